"""Personal data in answers, masked for callers without `PII.Read`.

An answer that carries fields of people (a contract's PII fields: pseudonyms and what the
contract keeps of a value, such as a card's last four digits) passes them through `masked`
with the caller: a caller holding `PII.Read` sees them; any other sees `MASK` in their place.
`None` stays `None` (there is nothing to hide), and the shape of the answer does not change,
so a client reads both the same way.

    fields = personal_fields(contract)
    return [masked(row, fields, caller()) for row in rows]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.events.contracts import Contract
from shared.identity.principal import Principal
from shared.identity.roles import Role

MASK = "***"


def personal_fields(contract: Contract) -> frozenset[str]:
    """The fields of a contract's rows that hold personal data: each PII field (stored as its
    pseudonym) and the part of it the contract keeps."""
    names = set(contract.pii)
    names.update(pii.kept_as for pii in contract.pii.values() if pii.kept_as is not None)
    return frozenset(names)


def sees_personal_data(caller: Principal) -> bool:
    return caller.holds(Role.PII_READ.value)


def masked(row: Mapping[str, Any], fields: Iterable[str], caller: Principal) -> dict[str, Any]:
    """The row as the caller may see it: `fields` masked unless it holds `PII.Read`."""
    shown = dict(row)
    if sees_personal_data(caller):
        return shown
    for name in fields:
        if shown.get(name) is not None:
            shown[name] = MASK
    return shown
