"""The event contracts, each defined once: its data Struct, version, entity key and PII fields.

A contract drives validation (the Struct's types and constraints, decoded by msgspec in C,
plus the checks msgspec cannot express, such as Luhn), the bronze Delta schema, and later
the catalog. PII fields never land raw: the bronze writer stores a keyed pseudonym and only
what `Pii` allows to keep.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from shared.events.iso_codes import ISO_3166_COUNTRIES, ISO_4217_CURRENCIES
from shared.events.representable import field_range_check
from shared.events.validators import invalid_card_numbers, is_card_number

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
CardNumber = Annotated[str, msgspec.Meta(min_length=12, max_length=19)]
Amount = Annotated[float, msgspec.Meta(ge=0, le=1e15)]
Measure = Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)]
Temperature = Annotated[float, msgspec.Meta(ge=-273.15, le=1e5)]
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=1e9)]
# A PII field of a protected event (pseudonymized at intake): its HMAC-SHA256, in hex.
Pseudonym = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]

MCC_CODES = tuple(f"{code:04d}" for code in range(10_000))
# Card scheme reason codes of a chargeback: fraud ones (Visa 10.x, Mastercard 4837/4863/4870/
# 4871) teach the fraud model; the others are disputes (goods not received, not as described,
# duplicate processing) and do not.
FRAUD_REASON_CODES = ("10.1", "10.2", "10.3", "10.4", "10.5", "4837", "4863", "4870", "4871")
DISPUTE_REASON_CODES = ("13.1", "13.3", "12.6.1", "4853", "4834")
COMPONENTS = ("bearing", "motor", "pump_seal", "gearbox", "sensor", "other")  # of a failure

if TYPE_CHECKING:
    Currency = str
    Country = str
    Mcc = str
    ReasonCode = str
    Component = str
else:
    # msgspec checks Literal sets in C, far faster than a Python check per event (even the
    # 10,000 four-digit merchant category codes beat a regex by 0.4 us an event).
    Currency = Literal[ISO_4217_CURRENCIES]
    Country = Literal[ISO_3166_COUNTRIES]
    Mcc = Literal[MCC_CODES]
    ReasonCode = Literal[FRAUD_REASON_CODES + DISPUTE_REASON_CODES]
    Component = Literal[COMPONENTS]


# gc=False: events are decoded by the thousand and hold only scalars, so they can never be in a
# reference cycle; untracked, they do not trigger garbage collections.
class PaymentTransaction(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A card payment at a point of sale, online or at an ATM."""

    transaction_id: Id
    account_id: Id
    card_number: CardNumber
    amount: Amount
    currency: Currency
    merchant_id: Id
    merchant_category: Mcc
    country: Country
    channel: Literal["pos", "ecommerce", "atm"]


class IotTelemetry(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """One reading of a machine's sensors."""

    device_id: Id
    temperature_c: Temperature
    vibration_mm_s: NonNegative
    pressure_kpa: NonNegative
    rpm: NonNegative


class AppInteraction(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A user's action on an item in an app."""

    user_id: Id
    item_id: Id
    action: Literal["view", "click", "add_to_cart", "purchase"]
    session_id: Id


Moment = Annotated[dt.datetime, msgspec.Meta(tz=True)]  # a time of day with its UTC offset


class PaymentChargeback(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A card holder disputed a payment, days after it: the label fraud is learned from."""

    transaction_id: Id
    account_id: Id
    reason_code: ReasonCode
    reported_at: Moment


class DeviceFailure(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A machine failed: reported by maintenance after the fact, the label of maintenance."""

    device_id: Id
    failed_at: Moment
    component: Component


@dataclass(frozen=True)
class Pii:
    """A personal field: its column holds an HMAC-SHA256 pseudonym instead of the value, and
    the column `kept_as` holds the value's last `keep_last` characters, if the contract allows."""

    keep_last: int = 0
    kept_as: str | None = None

    def __post_init__(self) -> None:
        if (self.keep_last > 0) != (self.kept_as is not None):
            raise ValueError("Pii: keep_last and kept_as go together")


@dataclass(frozen=True)
class FieldCheck:
    """A rule msgspec's types cannot express; `problem` describes it without quoting the value.

    `rejects_many`, if given, does what `accepts` does for a whole column at once (the indexes
    of the values refused), faster.
    """

    field: str
    accepts: Callable[[Any], bool]
    problem: str
    rejects_many: Callable[[Sequence[Any]], list[int]] | None = None


@dataclass(frozen=True, eq=False)
class Contract:
    """One version of an event type's data contract."""

    event_type: str
    version: int
    data: type[msgspec.Struct]
    entity_key: str
    pii: Mapping[str, Pii] = field(default_factory=dict)
    checks: tuple[FieldCheck, ...] = ()
    description: str = ""
    scored_by: str | None = None  # the model that scores each event as it lands, if any
    # The contract's own checks, after those every typed field needs to fit its bronze column
    # (`representable.field_range_check`): the data must be storable before it is judged.
    all_checks: tuple[FieldCheck, ...] = field(init=False, repr=False)
    # The data of a protected event: each PII field as its pseudonym, followed by the part
    # the contract keeps (`Pii.kept_as`); `data` itself when the contract has no PII.
    protected_data: type[msgspec.Struct] = field(init=False, repr=False)
    # The fields of free text (strings that are not PII), which the card number scrubber reads.
    text_fields: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = set(self.field_names)
        unknown = ({self.entity_key} | set(self.pii) | {c.field for c in self.checks}) - names
        if unknown:
            raise ValueError(f"contract {self.event_type}: unknown fields {sorted(unknown)}")
        kept = {p.kept_as for p in self.pii.values() if p.kept_as is not None} & names
        if kept:
            raise ValueError(f"contract {self.event_type}: kept_as names a field: {sorted(kept)}")
        object.__setattr__(self, "all_checks", (*_range_checks(self.data), *self.checks))
        object.__setattr__(self, "protected_data", _protected_data(self.data, self.pii))
        object.__setattr__(self, "text_fields", _text_fields(self.data, self.pii))

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self.data.__struct_fields__)

    @property
    def table(self) -> str:
        """The bronze table's name: the type with dots as underscores."""
        return self.event_type.replace(".", "_")

    @property
    def dataschema(self) -> str:
        """The CloudEvents `dataschema` naming this version."""
        return f"urn:contract:{self.event_type}:{self.version}"

    def violation(self, data: Any, *, protected: bool = False) -> str | None:
        """The first rule the decoded data breaks, as a message without the value, or None.
        A protected event's PII fields are pseudonyms, checked by their type alone."""
        for check in self.all_checks:
            if protected and check.field in self.pii:
                continue
            if not check.accepts(getattr(data, check.field)):
                return f"data.{check.field} {check.problem}"
        return None

    def violations(
        self, datas: Sequence[Any], protected: Sequence[bool] | None = None
    ) -> dict[int, str]:
        """`violation` for many, column by column: the index and message of each failure.
        `protected` says which are protected events (None: none is)."""
        found: dict[int, str] = {}
        raw = None if protected is None else [i for i, p in enumerate(protected) if not p]
        for check in self.all_checks:
            chosen = datas
            if raw is not None and check.field in self.pii:
                chosen = [datas[i] for i in raw]
            values = list(map(attrgetter(check.field), chosen))
            if check.rejects_many is not None:
                refused = check.rejects_many(values)
            else:
                results = list(map(check.accepts, values))
                refused = [i for i, ok in enumerate(results) if not ok] if False in results else []
            if chosen is not datas and raw is not None:
                refused = [raw[i] for i in refused]
            message = f"data.{check.field} {check.problem}"
            for index in refused:
                found.setdefault(index, message)
        return found


def _protected_data(data: type[msgspec.Struct], pii: Mapping[str, Pii]) -> type[msgspec.Struct]:
    if not pii:
        return data
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for info in msgspec.structs.fields(data):
        part = pii.get(info.name)
        kind = info.type if part is None else Pseudonym
        fields.append((info.name, kind) if info.required else (info.name, kind, info.default))
        if part is not None and part.kept_as is not None:
            kept = Annotated[str, msgspec.Meta(max_length=part.keep_last)]
            fields.append((part.kept_as, kept) if info.required else (part.kept_as, kept, None))
    return msgspec.defstruct(
        f"Protected{data.__name__}",
        fields,
        forbid_unknown_fields=True,
        frozen=True,
        gc=False,
    )


def _text_fields(data: type[msgspec.Struct], pii: Mapping[str, Pii]) -> tuple[str, ...]:
    info = msgspec.inspect.type_info(data)
    assert isinstance(info, msgspec.inspect.StructType)
    found = []
    for struct_field in info.fields:
        kind = struct_field.type
        while isinstance(kind, msgspec.inspect.Metadata):
            kind = kind.type
        if isinstance(kind, msgspec.inspect.StrType) and struct_field.name not in pii:
            found.append(struct_field.name)
    return tuple(found)


def _range_checks(data: type[msgspec.Struct]) -> list[FieldCheck]:
    info = msgspec.inspect.type_info(data)
    assert isinstance(info, msgspec.inspect.StructType)
    checks = []
    for struct_field in info.fields:
        found = field_range_check(struct_field.type)
        if found is not None:
            checks.append(FieldCheck(struct_field.name, *found))
    return checks


PAYMENT_TRANSACTION = Contract(
    event_type="payment.transaction",
    version=1,
    data=PaymentTransaction,
    entity_key="account_id",
    pii={"card_number": Pii(keep_last=4, kept_as="card_last4")},
    checks=(
        FieldCheck(
            "card_number",
            is_card_number,
            "is not a valid card number (Luhn)",
            rejects_many=invalid_card_numbers,
        ),
    ),
    description="Card payments: amount, currency, merchant, country and channel.",
    scored_by="fraud",
)
IOT_TELEMETRY = Contract(
    event_type="iot.telemetry",
    version=1,
    data=IotTelemetry,
    entity_key="device_id",
    description="Machine sensor readings: temperature, vibration, pressure and speed.",
    scored_by="maintenance",
)
APP_INTERACTION = Contract(
    event_type="app.interaction",
    version=1,
    data=AppInteraction,
    entity_key="user_id",
    description="User actions on items: views, clicks, cart additions and purchases.",
)

PAYMENT_CHARGEBACK = Contract(
    event_type="payment.chargeback",
    version=1,
    data=PaymentChargeback,
    entity_key="account_id",
    description=(
        "Chargebacks: a payment disputed by its card holder, with the scheme's reason code "
        "(fraud or dispute); they arrive days after the payment and label it."
    ),
)
DEVICE_FAILURE = Contract(
    event_type="device.failure",
    version=1,
    data=DeviceFailure,
    entity_key="device_id",
    description=(
        "Machine failures as maintenance reports them: when the device failed and which "
        "component; they arrive after the fact and label the readings before."
    ),
)

CONTRACTS: tuple[Contract, ...] = (
    PAYMENT_TRANSACTION,
    IOT_TELEMETRY,
    APP_INTERACTION,
    PAYMENT_CHARGEBACK,
    DEVICE_FAILURE,
)


class ContractRegistry:
    """The known contracts by type and version; the newest version of a type is its default."""

    def __init__(self, contracts: Iterable[Contract] = CONTRACTS) -> None:
        self._by_version: dict[tuple[str, int], Contract] = {}
        self._latest: dict[str, Contract] = {}
        self._by_dataschema: dict[str, Contract] = {}
        for contract in contracts:
            key = (contract.event_type, contract.version)
            if key in self._by_version:
                raise ValueError(
                    f"contract {contract.event_type} v{contract.version} defined twice"
                )
            self._by_version[key] = contract
            self._by_dataschema[contract.dataschema] = contract
            latest = self._latest.get(contract.event_type)
            if latest is None or contract.version > latest.version:
                self._latest[contract.event_type] = contract

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(sorted(self._latest))

    def latest(self) -> tuple[Contract, ...]:
        """The newest version of every type."""
        return tuple(self._latest[t] for t in self.types)

    def all(self) -> tuple[Contract, ...]:
        return tuple(self._by_version.values())

    def get(self, event_type: str, version: int | None = None) -> Contract | None:
        if version is None:
            return self._latest.get(event_type)
        return self._by_version.get((event_type, version))

    def by_dataschema(self, dataschema: str) -> Contract | None:
        return self._by_dataschema.get(dataschema)
