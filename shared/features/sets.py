"""The platform's feature sets, by name and by the event type they read."""

from __future__ import annotations

from typing import Any

from shared.features.base import FeatureSet
from shared.features.interactions import InteractionFeatures
from shared.features.payments import PaymentFeatures
from shared.features.telemetry import TelemetryFeatures

FEATURE_SETS: tuple[FeatureSet[Any], ...] = (
    PaymentFeatures(),
    TelemetryFeatures(),
    InteractionFeatures(),
)
BY_EVENT_TYPE = {feature_set.event_type: feature_set for feature_set in FEATURE_SETS}
