"""Silver specs agree with the ingestion contracts they are declared for."""

from __future__ import annotations

import typing

import pytest

from shared.events.contracts import CONTRACTS
from shared.lakehouse.bronze_schema import bronze_schema
from shared.pipeline.gold import load_models
from shared.pipeline.quality import AcceptedValues
from shared.pipeline.specs import SILVER_SPECS
from tests.lakedata import medallion_for

pytestmark = pytest.mark.unit


def test_every_contract_has_a_silver_spec_and_no_spec_is_orphaned() -> None:
    assert set(SILVER_SPECS) == {contract.table for contract in CONTRACTS}


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.event_type for c in CONTRACTS])
def test_typed_and_checked_columns_are_bronze_columns(contract) -> None:  # type: ignore[no-untyped-def]
    spec = SILVER_SPECS[contract.table]
    bronze = set(bronze_schema(contract).names)
    assert set(spec.typed) <= bronze
    assert {rule.column for rule in spec.rules} <= bronze
    assert set(spec.zorder) <= bronze
    assert spec.event_type == contract.event_type


def test_accepted_values_match_the_contracts_literals() -> None:
    from shared.events.contracts import AppInteraction, PaymentTransaction

    declared = {
        ("payment_transaction", "channel"): typing.get_type_hints(PaymentTransaction)["channel"],
        ("app_interaction", "action"): typing.get_type_hints(AppInteraction)["action"],
    }
    for (table, column), literal in declared.items():
        [rule] = [
            r
            for r in SILVER_SPECS[table].rules
            if isinstance(r, AcceptedValues) and r.column == column
        ]
        assert set(rule.values) == set(typing.get_args(literal))


def test_the_run_plan_says_which_silver_tables_each_model_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = medallion_for(tmp_path / "lake").run_plan()
    assert plan.silver == sorted(SILVER_SPECS)
    assert plan.gold == sorted(load_models())
    assert plan.reads["account_daily_spend"] == ["payment_transaction"]
    assert plan.reads["ingestion_kpis"] == sorted(SILVER_SPECS)
    assert plan.engine == "duckdb"
