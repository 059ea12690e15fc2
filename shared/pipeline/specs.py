"""Silver tables as declared per contract: the typed columns and the quality rules of each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.events.contracts import COMPONENTS, DISPUTE_REASON_CODES, FRAUD_REASON_CODES
from shared.pipeline.lake import table_name
from shared.pipeline.quality import (
    AcceptedValues,
    Freshness,
    Matches,
    NotNull,
    Range,
    RowCountChange,
    RowRule,
    TableRule,
)

# The lineage every landed row carries; the other lineage columns pass through as landed.
LINEAGE: Mapping[str, str] = {
    "event_id": "VARCHAR",
    "event_type": "VARCHAR",
    "source": "VARCHAR",
    "event_time": "TIMESTAMPTZ",
    "enqueued_time": "TIMESTAMPTZ",
    "ingested_at": "TIMESTAMPTZ",
}
LINEAGE_RULES: tuple[RowRule, ...] = (
    NotNull("event_id"),
    NotNull("source"),
    NotNull("event_time"),
)


@dataclass(frozen=True)
class SilverSpec:
    """One event type's silver table: `columns` maps a column to its DuckDB type; every other
    bronze column (pseudonyms, `extras`, the hub position) passes through unchanged."""

    event_type: str
    columns: Mapping[str, str]
    row_rules: tuple[RowRule, ...] = ()
    table_rules: tuple[TableRule, ...] = field(
        default=(Freshness(dt.timedelta(hours=24)), RowCountChange(10.0))
    )
    zorder: tuple[str, ...] = ()  # what readers filter on, for the nightly Z-order

    @property
    def table(self) -> str:
        return table_name(self.event_type)

    @property
    def typed(self) -> dict[str, str]:
        return {**LINEAGE, **self.columns}

    @property
    def rules(self) -> tuple[RowRule, ...]:
        return LINEAGE_RULES + self.row_rules


PAYMENT_TRANSACTION = SilverSpec(
    event_type="payment.transaction",
    columns={
        "transaction_id": "VARCHAR",
        "account_id": "VARCHAR",
        "amount": "DECIMAL(18,2)",
        "currency": "VARCHAR",
        "merchant_id": "VARCHAR",
        "merchant_category": "VARCHAR",
        "country": "VARCHAR",
        "channel": "VARCHAR",
    },
    row_rules=(
        NotNull("transaction_id"),
        NotNull("account_id"),
        NotNull("amount"),
        NotNull("currency"),
        NotNull("merchant_id"),
        Range("amount", min=0, max=1_000_000),
        Matches("currency", "[A-Z]{3}"),
        Matches("merchant_category", "[0-9]{4}"),
        Matches("country", "[A-Z]{2}"),
        AcceptedValues("channel", ("pos", "ecommerce", "atm")),
    ),
    zorder=("account_id", "merchant_id"),
)

IOT_TELEMETRY = SilverSpec(
    event_type="iot.telemetry",
    columns={
        "device_id": "VARCHAR",
        "temperature_c": "DOUBLE",
        "vibration_mm_s": "DOUBLE",
        "pressure_kpa": "DOUBLE",
        "rpm": "DOUBLE",
    },
    row_rules=(
        NotNull("device_id"),
        Range("temperature_c", min=-60, max=200),
        Range("vibration_mm_s", min=0, max=500),
        Range("pressure_kpa", min=0, max=10_000),
        Range("rpm", min=0, max=100_000),
    ),
    zorder=("device_id",),
)

APP_INTERACTION = SilverSpec(
    event_type="app.interaction",
    columns={
        "user_id": "VARCHAR",
        "item_id": "VARCHAR",
        "action": "VARCHAR",
        "session_id": "VARCHAR",
    },
    row_rules=(
        NotNull("user_id"),
        NotNull("item_id"),
        NotNull("session_id"),
        AcceptedValues("action", ("view", "click", "add_to_cart", "purchase")),
    ),
    zorder=("session_id", "item_id"),
)

# Labels: few rows, arriving late (a chargeback days after its payment), so their freshness
# is judged over a week and their row counts may swing.
LABEL_RULES: tuple[TableRule, ...] = (Freshness(dt.timedelta(days=7)), RowCountChange(100.0))

PAYMENT_CHARGEBACK = SilverSpec(
    event_type="payment.chargeback",
    columns={
        "transaction_id": "VARCHAR",
        "account_id": "VARCHAR",
        "reason_code": "VARCHAR",
        "reported_at": "TIMESTAMPTZ",
    },
    row_rules=(
        NotNull("transaction_id"),
        NotNull("account_id"),
        NotNull("reason_code"),
        NotNull("reported_at"),
        AcceptedValues("reason_code", FRAUD_REASON_CODES + DISPUTE_REASON_CODES),
    ),
    table_rules=LABEL_RULES,
    zorder=("transaction_id",),
)

DEVICE_FAILURE = SilverSpec(
    event_type="device.failure",
    columns={"device_id": "VARCHAR", "failed_at": "TIMESTAMPTZ", "component": "VARCHAR"},
    row_rules=(
        NotNull("device_id"),
        NotNull("failed_at"),
        AcceptedValues("component", COMPONENTS),
    ),
    table_rules=LABEL_RULES,
    zorder=("device_id",),
)

SILVER_SPECS: Mapping[str, SilverSpec] = {
    spec.table: spec
    for spec in (
        PAYMENT_TRANSACTION,
        IOT_TELEMETRY,
        APP_INTERACTION,
        PAYMENT_CHARGEBACK,
        DEVICE_FAILURE,
    )
}
