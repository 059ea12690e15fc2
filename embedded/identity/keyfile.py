"""The local issuer's files: a private key created once (owner only, never overwritten, so that
processes racing to create it all end up with the one that won) and public documents replaced
atomically."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


class IssuerKeyError(ValueError):
    """The issuer's key or its folder cannot be used; the message names the file and the fix."""


def private_directory(path: Path) -> None:
    """Create the folder (700), or close an existing one to others."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        try:
            path.chmod(PRIVATE_DIR_MODE)
        except PermissionError as error:
            raise IssuerKeyError(
                f"{path} holds a signing key but is not yours and cannot be made private (700)"
            ) from error


def load_or_create_private_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA key in `path` (PEM, PKCS #8, unencrypted), created on first use.

    A new key is written whole to a temporary file (600) and then hard-linked to `path`, which
    fails if `path` exists: unlike a rename, a link never replaces a key another process has
    just published and may already be signing with. The loser of a race reads the winner's.
    """
    try:
        return _parse(path, path.read_bytes())
    except FileNotFoundError:
        pass
    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if _publish_once(path, pem):
        return key
    return _parse(path, path.read_bytes())


def write_atomically(path: Path, data: bytes, mode: int = PUBLIC_FILE_MODE) -> None:
    """Replace `path` with `data` in one step: readers see the old file or the new, whole."""
    temporary = _write_temporary(path, data, mode)
    try:
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _publish_once(path: Path, data: bytes) -> bool:
    """Put `data` at `path` unless a file is already there; True when this call put it."""
    temporary = _write_temporary(path, data, PRIVATE_FILE_MODE)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        # A file system without hard links: a rename, guarded by a look first. Only a race
        # inside this window could leave two processes with different keys.
        if path.exists():
            return False
        os.replace(temporary, path)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _write_temporary(path: Path, data: bytes, mode: int) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _parse(path: Path, data: bytes) -> rsa.RSAPrivateKey:
    remedy = "delete it to make a new one (tokens it signed will no longer verify)"
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise IssuerKeyError(f"{path} is not an unencrypted PEM private key: {remedy}") from error
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < KEY_BITS:
        raise IssuerKeyError(f"{path} is not an RSA key of at least {KEY_BITS} bits: {remedy}")
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_FILE_MODE)  # a key others could read: close it (it stays in use)
    return key
