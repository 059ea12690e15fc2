"""Telemetry features per device: what predictive maintenance is learned from and scored on.

For temperature and vibration, the mean, standard deviation and slope (per hour) over the last
`LAST_N` readings and over the last hour, this reading included; the reading's own values;
and `seconds_since_last` (-1 for the first).
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.features.base import NONE, Row, stats

LAST_N = 10
HORIZON_S = 3600.0
SENSORS = (("temperature", "temperature_c"), ("vibration", "vibration_mm_s"))


class DeviceState(msgspec.Struct):
    """A device's recent readings (time, temperature, vibration): the last hour's, and at
    least the last `LAST_N - 1`."""

    readings: list[tuple[float, float, float]] = msgspec.field(default_factory=list)
    last_t: float = NONE


class TelemetryFeatures:
    name = "telemetry"
    event_type = "iot.telemetry"
    entity = "device_id"
    numeric: tuple[str, ...] = (
        "temperature_c",
        "vibration_mm_s",
        "pressure_kpa",
        "rpm",
        *(
            f"{sensor}_{stat}_{window}"
            for sensor, _ in SENSORS
            for window in (f"last{LAST_N}", "1h")
            for stat in ("mean", "std", "slope")
        ),
        "seconds_since_last",
    )
    categorical: frozenset[str] = frozenset()
    state_type = DeviceState

    def new_state(self) -> DeviceState:
        return DeviceState()

    def features(self, state: DeviceState, row: Row) -> dict[str, Any]:
        t = float(row["t"])
        current = (t, float(row["temperature_c"]), float(row["vibration_mm_s"]))
        earlier = [r for r in state.readings if r[0] <= t]
        last_n = [*earlier[-(LAST_N - 1) :], current]
        hour = [r for r in earlier if r[0] > t - HORIZON_S] + [current]
        found: dict[str, Any] = {
            name: float(row[name]) for name in ("temperature_c", "vibration_mm_s")
        }
        found["pressure_kpa"] = float(row["pressure_kpa"])
        found["rpm"] = float(row["rpm"])
        for index, (sensor, _) in enumerate(SENSORS, start=1):
            for window, readings in ((f"last{LAST_N}", last_n), ("1h", hour)):
                values = [r[index] for r in readings]
                mean, std, slope = stats(values, [r[0] for r in readings])
                found[f"{sensor}_mean_{window}"] = mean
                found[f"{sensor}_std_{window}"] = std
                found[f"{sensor}_slope_{window}"] = slope
        last = state.last_t
        found["seconds_since_last"] = t - last if last != NONE and t >= last else NONE
        return found

    def apply(self, state: DeviceState, row: Row) -> None:
        t = float(row["t"])
        newest = max(t, state.last_t)
        state.readings.append((t, float(row["temperature_c"]), float(row["vibration_mm_s"])))
        keep = len(state.readings) - (LAST_N - 1)
        state.readings = [
            r for i, r in enumerate(state.readings) if i >= keep or r[0] > newest - HORIZON_S
        ]
        state.last_t = newest
