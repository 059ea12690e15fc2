"""The fraud model: gradient boosting on the account's payment features, learned from
chargebacks with a fraud reason code (the label arrives days after the payment).

Only payments old enough for their chargeback to have come (`MATURITY` before the newest
chargeback seen) are labelled; a dispute (goods not received...) is not fraud.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from shared.events.contracts import FRAUD_REASON_CODES
from shared.features.offline import point_in_time
from shared.features.payments import PaymentFeatures
from shared.models.boosting import classifier, fit
from shared.models.datasets import MissingData, Reads, bronze_rows
from shared.models.trained import TrainedModel
from shared.pipeline.lake import Lake

NAME = "fraud"
MATURITY = dt.timedelta(days=5)
FEATURES = PaymentFeatures()
COLUMNS = ("transaction_id", "account_id", "amount", "country", "merchant_category", "channel")


def labelled(
    lake: Lake, reads: Reads, maturity: dt.timedelta | None = None
) -> tuple[np.ndarray, np.ndarray, dt.timedelta]:
    """The mature payments' features (in event-time order) and labels, and the maturity."""
    labels = reads.query(
        lake,
        "silver",
        "payment_chargeback",
        "SELECT transaction_id, reason_code, epoch_us(event_time) AS at_us FROM source",
    )
    if labels is None or labels.num_rows == 0:
        raise MissingData(
            "no chargebacks in silver yet: post labelled history "
            "(python -m benchmarks.simulate --backfill-days 14) and run the medallion pipeline"
        )
    chargebacks = labels.to_pylist()
    fraud = {c["transaction_id"] for c in chargebacks if c["reason_code"] in FRAUD_REASON_CODES}
    wait = MATURITY if maturity is None else maturity
    known_until = max(c["at_us"] for c in chargebacks) / 1e6 - wait.total_seconds()
    x, y = [], []
    for row, features in point_in_time(
        FEATURES, bronze_rows(lake, reads, FEATURES.event_type, COLUMNS)
    ):
        if row["t"] > known_until:
            break  # rows come in event-time order: the rest are too young to be labelled
        x.append([features[name] for name in FEATURES.numeric])
        y.append(1 if row["transaction_id"] in fraud else 0)
    return np.asarray(x, dtype=np.float32), np.asarray(y), wait


def train(lake: Lake, reads: Reads, maturity: dt.timedelta | None = None) -> TrainedModel:
    x, y, wait = labelled(lake, reads, maturity)
    boosted = fit(x, y, FEATURES.numeric, NAME)
    params = {
        "label": "chargeback with a fraud reason code",
        "label_maturity_hours": f"{wait.total_seconds() / 3600:g}",
    }
    return classifier(NAME, boosted, FEATURES.numeric, params, x[-1] if len(x) else [])
