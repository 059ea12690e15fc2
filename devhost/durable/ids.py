"""Random identifiers for instances, executions and invocations."""

from __future__ import annotations

import random
import uuid


def new_id() -> str:
    """A random (version 4) UUID from the fast PRNG: ids need uniqueness, not secrecy."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))
