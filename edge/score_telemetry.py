#!/usr/bin/env python3
"""Scores a CSV of machine telemetry offline with the maintenance model's ONNX file: all a
device needs is this script, the downloaded file (`GET /api/models/maintenance/versions/{v}/
onnx`), numpy and onnxruntime.

    python score_telemetry.py maintenance-v3.onnx readings.csv [-o scores.csv] [--threshold T]

Input: a CSV with a header naming at least `time` (the reading's event time, RFC 3339 with
its zone, as in the CloudEvent), `device_id`, `temperature_c`, `vibration_mm_s`,
`pressure_kpa` and `rpm`; other columns (an `id`, say) are passed through. Each device's
readings are folded in event-time order, readings with the same time in the order of the file,
into exactly the features of the platform's `shared/features/telemetry.py`. The ingest stream
folds a device's readings in the order they arrive, so a file listing them in arrival order
gets the stream's scores (the same, for readings that arrive in time order); training
(`bronze_rows`) orders equal times by event id.

Output (`-o`, else stdout): the input's columns (but its own `score` and `decision`), then
`score`, the probability of a failure as the service reports it, and `decision` (`flag` at or
over the threshold, else `pass`; empty when neither the model's metadata nor `--threshold`
gives one). Rows come in the input's order.

A row that cannot be scored (a missing field, a number that is not one or out of the
contract's range, a time without its zone) is reported on stderr with its line and skipped.
Exit status: 0 when every row was scored, 1 when some were skipped, 2 when nothing could be
(usage, an unreadable file, a model whose features this script does not compute).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import onnxruntime as ort

# The features, as shared/features/telemetry.py defines them (tests/unit/test_edge_score.py
# fails when the two drift apart).
LAST_N = 10
HORIZON_S = 3600.0
NONE = -1.0  # a feature with nothing to say (no earlier reading)
SENSORS = ("temperature", "vibration")
FEATURES: tuple[str, ...] = (
    "temperature_c",
    "vibration_mm_s",
    "pressure_kpa",
    "rpm",
    *(
        f"{sensor}_{stat}_{window}"
        for sensor in SENSORS
        for window in (f"last{LAST_N}", "1h")
        for stat in ("mean", "std", "slope")
    ),
    "seconds_since_last",
)
# The contract iot.telemetry's fields and ranges (shared/events/contracts.py).
TIME = "time"
DEVICE = "device_id"
ID_MAX_CHARS = 128
RANGES = {
    "temperature_c": (-273.15, 1e5),
    "vibration_mm_s": (0.0, 1e9),
    "pressure_kpa": (0.0, 1e9),
    "rpm": (0.0, 1e9),
}
REQUIRED = (TIME, DEVICE, *RANGES)
# The graph (shared/models/onnx_export.py): its input, output and metadata keys.
FEATURES_INPUT = "features"
PROBABILITIES = "probabilities"
FEATURES_METADATA = "features"
THRESHOLD_METADATA = "threshold"
ADDED = ("score", "decision")
CHUNK_ROWS = 65_536
ALL_SCORED, SOME_SKIPPED, REFUSED = 0, 1, 2

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):?([0-9]{2}))"
)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")  # bytes that were not UTF-8 (surrogateescape)


class RowError(ValueError):
    """A row that cannot be scored; the message says which field and why."""


class Refused(Exception):
    """Nothing can be scored: the model or the file cannot be used; the message says why."""


@dataclass(frozen=True)
class Reading:
    """One valid row: its line in the file, event time in seconds, device and sensors, and
    the row as read (passed through)."""

    line: int
    t: float
    device_id: str
    temperature_c: float
    vibration_mm_s: float
    pressure_kpa: float
    rpm: float
    fields: list[str]


@dataclass
class DeviceState:
    """A device's recent readings (time, temperature, vibration) and its newest time."""

    readings: list[tuple[float, float, float]] = field(default_factory=list)
    last_t: float = NONE


def epoch_seconds(text: str) -> float:
    """The seconds since the epoch of an RFC 3339 time, as the platform computes them: from
    whole microseconds, digits past the sixth rounded as msgspec decodes the CloudEvent."""
    found = _RFC3339.fullmatch(text.strip())
    if found is None:
        raise RowError(f"time {text[:40]!r} is not an RFC 3339 time with its zone")
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    digits, sign, zone_hours, zone_minutes = found.group(7, 8, 9, 10)
    offset = dt.timedelta()
    if sign is not None:
        if int(zone_hours) > 23 or int(zone_minutes) > 59:
            raise RowError(f"time {text[:40]!r} has no such UTC offset")
        offset = dt.timedelta(hours=int(zone_hours), minutes=int(zone_minutes))
        offset = -offset if sign == "-" else offset
    micros = int(digits[:6].ljust(6, "0")) + (1 if digits[6:7] >= "5" else 0) if digits else 0
    try:
        moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone(offset))
        moment += dt.timedelta(microseconds=micros)
    except (ValueError, OverflowError) as error:
        raise RowError(f"time {text[:40]!r}: {error}") from None
    if moment < EPOCH:
        raise RowError(f"time {text[:40]!r} is before 1970, which the platform refuses")
    return ((moment - EPOCH) // _MICROSECOND) / 1_000_000


def _number(name: str, text: str) -> float:
    if _NUMBER.fullmatch(text.strip()) is None:
        raise RowError(f"{name} {text[:40]!r} is not a number")
    value = float(text)
    low, high = RANGES[name]
    if not low <= value <= high:
        raise RowError(f"{name} {text[:40]!r} is outside {low:g} to {high:g}")
    return value


def reading(header: Sequence[str], fields: list[str], line: int) -> Reading:
    """A row as a reading; RowError names what is wrong with it."""
    if len(fields) < len(header):
        raise RowError(f"missing {', '.join(header[len(fields) :][:5])}")
    if len(fields) > len(header):
        raise RowError(f"{len(fields)} fields for {len(header)} columns")
    if any(_SURROGATE.search(value) for value in fields):
        raise RowError("not UTF-8 text")
    row = dict(zip(header, fields, strict=True))
    device = row[DEVICE]
    if not 1 <= len(device) <= ID_MAX_CHARS:
        raise RowError(f"device_id has 1 to {ID_MAX_CHARS} characters")
    return Reading(
        line=line,
        t=epoch_seconds(row[TIME]),
        device_id=device,
        temperature_c=_number("temperature_c", row["temperature_c"]),
        vibration_mm_s=_number("vibration_mm_s", row["vibration_mm_s"]),
        pressure_kpa=_number("pressure_kpa", row["pressure_kpa"]),
        rpm=_number("rpm", row["rpm"]),
        fields=fields,
    )


def read_readings(lines: Iterable[str]) -> tuple[list[str], list[Reading], list[str]]:
    """The header, the valid readings in file order, and a message for each row skipped."""
    records = csv.reader(lines)
    try:
        header = next(records, None)
    except csv.Error as error:
        raise Refused(f"line 1: the header cannot be read: {error}") from None
    if header is None:
        raise Refused("the CSV is empty: it needs a header naming " + ", ".join(REQUIRED))
    if any(_SURROGATE.search(name) for name in header):
        raise Refused("line 1: the header is not UTF-8 text")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise Refused(f"line 1: the header has no {', '.join(missing)} column")
    twice = sorted({name for name in REQUIRED if header.count(name) > 1})
    if twice:
        raise Refused(f"line 1: the header names {', '.join(twice)} more than once")
    readings: list[Reading] = []
    problems: list[str] = []
    for line, fields in _records(records, problems):
        try:
            readings.append(reading(header, fields, line))
        except RowError as error:
            problems.append(f"line {line}: {error}")
    return header, readings, problems


def _records(records: Any, problems: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank record with the line it starts on; unreadable ones go to `problems`."""
    while True:
        start = records.line_num + 1
        try:
            fields = next(records)
        except StopIteration:
            return
        except csv.Error as error:
            problems.append(f"line {start}: {error}")
            if records.line_num < start:
                return  # nothing more could be read
            continue
        if fields:
            yield start, fields


def _stats(values: list[float], times: list[float]) -> tuple[float, float, float]:
    n = len(values)
    if n == 0:
        return NONE, NONE, 0.0
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / n
    if n == 1:
        return mean, 0.0, 0.0
    t_mean = sum(times) / n
    spread = sum((t - t_mean) ** 2 for t in times)
    if spread == 0:
        return mean, variance**0.5, 0.0
    slope = sum((t - t_mean) * (v - mean) for t, v in zip(times, values, strict=True)) / spread
    return mean, variance**0.5, slope * 3600.0


def features(state: DeviceState, row: Reading) -> dict[str, float]:
    """The reading's features from the readings its device had before it."""
    t = row.t
    current = (t, row.temperature_c, row.vibration_mm_s)
    earlier = [r for r in state.readings if r[0] <= t]
    last_n = [*earlier[-(LAST_N - 1) :], current]
    hour = [r for r in earlier if r[0] > t - HORIZON_S] + [current]
    found = {
        "temperature_c": row.temperature_c,
        "vibration_mm_s": row.vibration_mm_s,
        "pressure_kpa": row.pressure_kpa,
        "rpm": row.rpm,
    }
    for index, sensor in enumerate(SENSORS, start=1):
        for window, readings in ((f"last{LAST_N}", last_n), ("1h", hour)):
            mean, std, slope = _stats([r[index] for r in readings], [r[0] for r in readings])
            found[f"{sensor}_mean_{window}"] = mean
            found[f"{sensor}_std_{window}"] = std
            found[f"{sensor}_slope_{window}"] = slope
    last = state.last_t
    found["seconds_since_last"] = t - last if last != NONE and t >= last else NONE
    return found


def apply(state: DeviceState, row: Reading) -> None:
    """Fold the reading into its device's state."""
    t = row.t
    newest = max(t, state.last_t)
    state.readings.append((t, row.temperature_c, row.vibration_mm_s))
    keep = len(state.readings) - (LAST_N - 1)
    state.readings = [
        r for i, r in enumerate(state.readings) if i >= keep or r[0] > newest - HORIZON_S
    ]
    state.last_t = newest


def feature_rows(readings: Sequence[Reading]) -> list[dict[str, float]]:
    """Each reading's features, in the order given; each device folded in event-time order,
    equal times in the order given."""
    found: list[dict[str, float]] = [{} for _ in readings]
    states: dict[str, DeviceState] = {}
    for i in sorted(range(len(readings)), key=lambda i: readings[i].t):
        state = states.setdefault(readings[i].device_id, DeviceState())
        found[i] = features(state, readings[i])
        apply(state, readings[i])
    return found


@dataclass(frozen=True)
class Model:
    """A loaded graph, the features it reads in order, and its decision threshold."""

    session: Any
    features: tuple[str, ...]
    threshold: float | None

    def scores(self, rows: Sequence[dict[str, float]]) -> list[float]:
        """The probability of class 1 of each row, as the service computes it."""
        scored: list[float] = []
        for start in range(0, len(rows), CHUNK_ROWS):
            matrix = np.asarray(
                [[row[name] for name in self.features] for row in rows[start : start + CHUNK_ROWS]],
                dtype=np.float32,
            )
            output = self.session.run([PROBABILITIES], {FEATURES_INPUT: matrix})[0]
            scored += [float(p) for p in np.asarray(output)[:, 1]]
        return scored


def load_model(path: Path, threshold: float | None = None) -> Model:
    """The model at `path`; Refused when it is not a graph of the telemetry features.
    `threshold` overrides the one in the model's metadata."""
    try:
        graph = path.read_bytes()
    except OSError as error:
        raise Refused(f"{path}: {error.strerror or error}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's errors have no common base but Exception
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise Refused(f"{path}: not a model onnxruntime can load ({first})") from None
    metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
    names = _feature_names(path, metadata.get(FEATURES_METADATA))
    inputs = {node.name: node.shape for node in session.get_inputs()}
    outputs = {node.name for node in session.get_outputs()}
    shape = inputs.get(FEATURES_INPUT)
    if shape is None or len(shape) != 2 or shape[1] != len(names) or PROBABILITIES not in outputs:
        raise Refused(
            f"{path}: not a classifier of {len(names)} features (input {FEATURES_INPUT!r} "
            f"[N, {len(names)}], output {PROBABILITIES!r}): it has inputs {sorted(inputs)} "
            f"and outputs {sorted(outputs)}"
        )
    if threshold is None and THRESHOLD_METADATA in metadata:
        try:
            threshold = float(metadata[THRESHOLD_METADATA])
        except ValueError:
            raise Refused(f"{path}: its threshold {metadata[THRESHOLD_METADATA]!r}") from None
    if threshold is not None and not math.isfinite(threshold):
        raise Refused(f"{path}: the threshold {threshold} is not a number")
    return Model(session, names, threshold)


def _feature_names(path: Path, text: str | None) -> tuple[str, ...]:
    if text is None:
        raise Refused(
            f"{path} does not say which features it reads (no {FEATURES_METADATA!r} in its "
            "metadata): download a version trained since models carry their feature names"
        )
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise Refused(f"{path}: its {FEATURES_METADATA!r} metadata is not a list of names")
    unknown = [name for name in names if name not in FEATURES]
    if unknown or not names:
        shown = ", ".join(unknown[:5]) or "none"
        raise Refused(
            f"{path} reads features this script does not compute ({shown}): it scores "
            "the maintenance model, on telemetry features"
        )
    return tuple(names)


def write_scores(
    out: TextIO, header: Sequence[str], readings: Sequence[Reading], model: Model
) -> None:
    """The input's columns (but its own `score` and `decision`), the score and decision."""
    scores = model.scores(feature_rows(readings))
    kept = [i for i, name in enumerate(header) if name not in ADDED]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*(header[i] for i in kept), *ADDED])
    for row, score in zip(readings, scores, strict=True):
        decision = "" if model.threshold is None else _decision(score, model.threshold)
        writer.writerow([*(row.fields[i] for i in kept), repr(score), decision])


def _decision(score: float, threshold: float) -> str:
    return "flag" if score >= threshold else "pass"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Score telemetry readings with the maintenance model's ONNX file."
    )
    parser.add_argument("model", type=Path, help="the .onnx file")
    parser.add_argument("readings", type=Path, help="the CSV of readings")
    parser.add_argument("-o", "--output", type=Path, help="the CSV to write (default: stdout)")
    parser.add_argument("--threshold", type=float, help="overrides the model's threshold")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model, args.threshold)
        with args.readings.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            header, readings, problems = read_readings(f)
        for problem in problems:
            print(f"{args.readings}: {problem}: skipped", file=sys.stderr)
        if args.output is None:
            write_scores(sys.stdout, header, readings, model)
        else:
            with args.output.open("w", encoding="utf-8", newline="") as out:
                write_scores(out, header, readings, model)
    except Refused as error:
        print(f"score_telemetry: {error}", file=sys.stderr)
        return REFUSED
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"score_telemetry: {where}{error.strerror or error}", file=sys.stderr)
        return REFUSED
    devices = len({row.device_id for row in readings})
    print(
        f"score_telemetry: {len(readings)} readings of {devices} devices scored, "
        f"{len(problems)} rows skipped",
        file=sys.stderr,
    )
    return SOME_SKIPPED if problems else ALL_SCORED


if __name__ == "__main__":
    sys.exit(main())
