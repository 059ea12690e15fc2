"""The edge scorer (`edge/score_telemetry.py`) against the platform: the features of
`shared/features/telemetry.py` for any readings, the times and values the contract accepts,
the stream's scores from the downloaded ONNX file in a Python that cannot import `shared`,
and malformed rows skipped with their line, never a traceback."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge import score_telemetry
from embedded.documents.store import DocumentStore
from shared.events.contracts import IOT_TELEMETRY, IotTelemetry
from shared.events.envelope import EventDecoder, Timestamp
from shared.features.base import NONE, epoch_seconds
from shared.features.offline import point_in_time
from shared.features.online import FEATURES_CONTAINER, OnlineFeatures
from shared.features.telemetry import HORIZON_S, LAST_N, TelemetryFeatures
from shared.models import maintenance, training
from shared.models.artifacts import LocalArtifacts
from shared.models.boosting import Boosted, classifier, fit
from shared.models.champions import ChampionCache
from shared.models.onnx_export import lightgbm_to_onnx
from shared.models.registry import MODELS_CONTAINER, ModelRegistry
from shared.models.service import Models
from shared.models.stream import StreamScorer
from shared.models.training import ModelTraining, TrainingRequest
from shared.pipeline.lake import Lake

pytestmark = pytest.mark.unit

FEATURES = TelemetryFeatures()
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
HEADER = ["id", "time", "device_id", "temperature_c", "vibration_mm_s", "pressure_kpa", "rpm"]
ZONES = [
    dt.UTC,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(-dt.timedelta(hours=8)),
]


@dataclass(frozen=True)
class Telemetry:
    """A reading as posted: event id, CloudEvent time (text) and the data."""

    id: str
    time: str
    data: dict[str, Any]

    def csv_fields(self) -> list[str]:
        values = [self.data[name] for name in HEADER[3:]]
        return [self.id, self.time, self.data["device_id"], *map(repr, values)]


def csv_text(readings: Sequence[Telemetry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(r.csv_fields() for r in readings)
    return out.getvalue()


def platform_features(readings: Sequence[Telemetry]) -> list[dict[str, Any]]:
    """`point_in_time` over the readings in event-time order (ties in the order given), the
    times as the stream decodes them; each reading's features in the order given."""
    decode = msgspec.json.Decoder(Timestamp)
    rows = [
        {**r.data, "t": epoch_seconds(decode.decode(msgspec.json.encode(r.time)))} for r in readings
    ]
    order = sorted(range(len(rows)), key=lambda i: rows[i]["t"])
    found: list[dict[str, Any]] = [{} for _ in rows]
    folded = point_in_time(FEATURES, [rows[i] for i in order])
    for i, (_, features) in zip(order, folded, strict=True):
        found[i] = features
    return found


# --- The features: one definition, whichever side computes them ---------------------------

MICROS = st.one_of(
    st.sampled_from([0, 1, 59_999_999, 3_599_999_999, 3_600_000_000, 3_600_000_001]),
    st.integers(0, 3 * 3_600_000_000),
)


@st.composite
def telemetry(draw: st.DrawFn, n: int) -> Telemetry:
    moment = START + dt.timedelta(microseconds=draw(MICROS))
    zone = draw(st.sampled_from(ZONES))
    text = (
        moment.astimezone(zone)
        .isoformat()
        .replace("+00:00", draw(st.sampled_from(["Z", "+00:00"])))
    )
    data = {
        "device_id": draw(st.sampled_from(["dev-1", "dev-2", 'a "quoted", id\n'])),
        "temperature_c": draw(st.floats(-273.15, 1e5)),
        "vibration_mm_s": draw(st.floats(0, 1e9)),
        "pressure_kpa": draw(st.floats(0, 1e9)),
        "rpm": draw(st.floats(0, 1e9)),
    }
    return Telemetry(f"e{n}", text, data)


@st.composite
def sequences(draw: st.DrawFn) -> list[Telemetry]:
    count = draw(st.integers(1, 40))
    return [draw(telemetry(n)) for n in range(count)]


@settings(max_examples=150, deadline=None)
@given(sequences())
def test_the_features_are_the_platforms_for_any_readings(readings: list[Telemetry]) -> None:
    header, parsed, problems = score_telemetry.read_readings(io.StringIO(csv_text(readings)))
    assert header == HEADER and not problems
    assert [r.device_id for r in parsed] == [r.data["device_id"] for r in readings]
    assert score_telemetry.feature_rows(parsed) == platform_features(readings)
    assert score_telemetry.FEATURES == FEATURES.numeric


def test_the_feature_constants_are_the_platforms() -> None:
    edge = (score_telemetry.LAST_N, score_telemetry.HORIZON_S, score_telemetry.NONE)
    assert edge == (LAST_N, HORIZON_S, NONE)


@st.composite
def times(draw: st.DrawFn) -> str:
    """RFC 3339 times, mostly valid: any zone, up to 10 fractional digits, and now and then
    a field out of range, a missing zone or a separator of another kind."""
    moment = draw(st.datetimes(dt.datetime(1969, 12, 31), dt.datetime(9999, 12, 31, 23, 59, 59)))
    fields = [f"{moment.year:04d}", f"{moment:%m}", f"{moment:%d}", f"{moment:%H}", f"{moment:%M}"]
    fields.append(f"{moment:%S}")
    broken = draw(st.sampled_from([None] * 18 + list(range(6))))
    if broken is not None:
        fields[broken] = draw(st.sampled_from(["0000", "00", "13", "24", "29", "30", "32", "60"]))
    digits = st.text("0123456789", min_size=1, max_size=10)
    fraction = draw(st.sampled_from(["", ".", ".digits", ".digits"]))
    fraction = fraction.replace("digits", draw(digits))
    separator = draw(st.sampled_from("TTTt _"))
    zone = draw(
        st.sampled_from(
            ["Z", "Z", "Z", "z", "+00:00", "-00:00", "+05:30", "-08:00", "+23:59", "-14:00"]
            + ["+0530", "", "+24:00", "+00:60", "+05"]
        )
    )
    year, month, day, hour, minute, second = fields
    return f"{year}-{month}-{day}{separator}{hour}:{minute}:{second}{fraction}{zone}"


@settings(max_examples=400, deadline=None)
@given(times())
@example("1969-12-31T23:59:59.9999995Z")  # rounds up to the epoch
@example("1970-01-01T00:00:00+00:01")  # a minute before it
@example("1970-01-01T05:30:00.000000+05:30")
@example("9999-12-31T23:59:59.9999999Z")  # past the last datetime
@example("2026-11-01T10:00:00.123456789-08:00")
def test_event_times_are_read_as_the_stream_decodes_the_cloudevent(text: str) -> None:
    try:
        moment = msgspec.json.decode(msgspec.json.encode(text), type=Timestamp)
    except msgspec.ValidationError:
        moment = None
    try:
        seconds: float | None = score_telemetry.epoch_seconds(text)
    except score_telemetry.RowError:
        seconds = None
    if moment is None or moment < score_telemetry.EPOCH:  # intake refuses times before 1970
        assert seconds is None
    else:
        assert seconds == epoch_seconds(moment)


VALUES = st.one_of(st.floats(), st.floats(-300, 2e9), st.sampled_from([-273.15, 1e5, 0.0, 1e9]))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=130), VALUES, VALUES, VALUES, VALUES)
def test_a_row_is_accepted_when_the_contract_accepts_its_data(
    device: str, temperature: float, vibration: float, pressure: float, rpm: float
) -> None:
    data = {
        "device_id": device,
        "temperature_c": temperature,
        "vibration_mm_s": vibration,
        "pressure_kpa": pressure,
        "rpm": rpm,
    }
    try:
        accepted = not IOT_TELEMETRY.violations([msgspec.convert(data, IotTelemetry)])
    except msgspec.ValidationError:
        accepted = False
    fields = ["2026-11-01T00:00:00Z", device, *map(repr, (temperature, vibration, pressure, rpm))]
    try:
        score_telemetry.reading(HEADER[1:], fields, 2)
    except score_telemetry.RowError:
        assert not accepted
    else:
        assert accepted


# --- The scores: the downloaded file, run alone, scores as the stream does --------------


def sensors(rng: np.random.Generator, wear: float) -> dict[str, float]:
    """A reading's values: vibration and temperature climb, noisily, as a machine wears."""
    return {
        "temperature_c": 60 + 4 * wear + float(rng.normal(0, 2)),
        "vibration_mm_s": max(0.0, 2 + 2 * wear + float(rng.normal(0, 0.8))),
        "pressure_kpa": 300 + float(rng.normal(0, 5)),
        "rpm": 1500 + float(rng.normal(0, 20)),
    }


def synthetic_history(devices: int = 10, hours: float = 16.0, seed: int = 5) -> tuple[Any, Any]:
    """Readings every minute or so, wearing in the 3 hours before each failure, and labels
    with some noise: the features and labels maintenance trains on, oldest first."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    failures: dict[str, list[float]] = {}
    for d in range(devices):
        device = f"dev-{d}"
        failures[device] = sorted(rng.uniform(2, hours + 3, size=3) * 3600)
        t = 0.0
        while t < hours * 3600:
            t += float(rng.uniform(40, 80))
            ahead = min((f - t for f in failures[device] if f > t), default=1e9)
            wear = max(0.0, 1 - ahead / (3 * 3600))
            at = START.timestamp() + round(t, 6)
            rows.append({"device_id": device, "t": at, **sensors(rng, wear)})
    rows.sort(key=lambda row: row["t"])
    horizon = maintenance.HORIZON.total_seconds()
    x, y = [], []
    for row, found in point_in_time(FEATURES, rows):
        x.append([found[name] for name in FEATURES.numeric])
        since = row["t"] - START.timestamp()
        fails = any(0 < f - since <= horizon for f in failures[row["device_id"]])
        y.append(int(fails != (rng.random() < 0.1)))
    return np.asarray(x, dtype=np.float32), np.asarray(y)


@dataclass
class Trained:
    models: Models
    boosted: Boosted
    folder: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """A small maintenance model, registered as training registers it (its champion)."""
    x, y = synthetic_history()
    boosted = fit(x, y, FEATURES.numeric, maintenance.NAME)
    model = classifier(maintenance.NAME, boosted, FEATURES.numeric, {}, x[-1].tolist())
    folder = tmp_path_factory.mktemp("edge")
    registry = ModelRegistry(DocumentStore(folder / "d.sqlite3").container(MODELS_CONTAINER))
    artifacts = LocalArtifacts(folder / "models")
    models = Models(
        registry, artifacts, ModelTraining(Lake(str(folder / "lake")), registry, artifacts)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(training.TRAINERS, maintenance.NAME, lambda lake, reads, **_: model)
        models.training.train(TrainingRequest(maintenance.NAME, run_id="edge"))
    yield Trained(models, boosted, folder)


def live_readings() -> list[Telemetry]:
    """Three devices, one wearing out, in arrival order: some times share a second (folded in
    the order they came), some have nanoseconds (rounded as the CloudEvent's are)."""
    rng = np.random.default_rng(11)
    readings: list[Telemetry] = []
    for n in range(900):
        device = n % 3
        wear = n / 900 if device == 0 else 0.0
        moment = START + dt.timedelta(
            hours=20, seconds=20 * (n // 3), microseconds=int(rng.integers(0, 10**6))
        )
        zone = ZONES[(n // 3) % len(ZONES)]
        text = moment.astimezone(zone).isoformat()
        if n % 5 == 0:  # nanoseconds: 7 to 9 digits
            text = text.replace(
                f".{moment.microsecond:06d}", f".{moment.microsecond:06d}{n % 1000}"
            )
        if n % 7 == 1 and n >= 3:  # at the time of the device's previous reading
            text = readings[n - 3].time
        data = {"device_id": f"dev-{device}", **sensors(rng, wear)}
        readings.append(Telemetry(f"r{n}", text, data))
    return readings


def stream_scores(trained: Trained, readings: Sequence[Telemetry]) -> dict[str, float]:
    """The scores the ingest stream lands in bronze, in batches of 50 with the states written
    between them."""
    now = START + dt.timedelta(days=2)
    decoder = EventDecoder(clock=lambda: now)
    features = OnlineFeatures(
        DocumentStore(trained.folder / "f.sqlite3").container(FEATURES_CONTAINER)
    )
    scorer = StreamScorer(features, ChampionCache(trained.models, background=False))
    found: dict[str, float] = {}
    for start in range(0, len(readings), 50):
        batch = readings[start : start + 50]
        envelopes = [
            decoder.decode(
                msgspec.json.encode(
                    {
                        "specversion": "1.0",
                        "id": r.id,
                        "source": "/devices",
                        "type": "iot.telemetry",
                        "time": r.time,
                        "data": r.data,
                    }
                )
            ).envelope
            for r in batch
        ]
        group = scorer.score(
            IOT_TELEMETRY, envelopes, [now] * len(batch), range(start, start + len(batch)), 0
        )
        assert group is not None
        group.commit()
        for r, score in zip(batch, group.scores, strict=True):
            assert score is not None
            found[r.id] = score
    return found


def run_alone(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The script as a device runs it: copied beside the model, in isolated mode (no project
    on the path, no PYTHONPATH), from its folder."""
    script = folder / "score_telemetry.py"
    script.write_bytes(Path(score_telemetry.__file__).read_bytes())
    return subprocess.run(
        [sys.executable, "-I", str(script), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_downloaded_file_scores_alone_as_the_stream_does(
    trained: Trained, tmp_path: Path
) -> None:
    readings = live_readings()
    served = stream_scores(trained, readings)
    champion = ChampionCache(trained.models, background=False).get(maintenance.NAME)
    assert champion is not None
    (tmp_path / "maintenance-v1.onnx").write_bytes(trained.models.onnx_file(maintenance.NAME, 1))
    (tmp_path / "readings.csv").write_text(csv_text(readings))

    done = run_alone(
        tmp_path,
        "maintenance-v1.onnx",
        "readings.csv",
        "-o",
        "scores.csv",
        "--threshold",
        repr(champion.threshold),
    )
    assert done.returncode == 0, done.stderr
    assert "900 readings of 3 devices scored, 0 rows skipped" in done.stderr
    with (tmp_path / "scores.csv").open(newline="") as f:
        scored = list(csv.DictReader(f))
    assert [row["id"] for row in scored] == [r.id for r in readings]
    assert list(scored[0]) == [*HEADER, "score", "decision"]
    worst = max(abs(float(row["score"]) - served[row["id"]]) for row in scored)
    assert worst <= 1e-6
    assert len({row["score"] for row in scored}) > len(scored) // 2  # not a constant model
    decisions = {row["decision"] for row in scored}
    assert decisions == {"flag", "pass"}
    for row in scored:
        assert row["decision"] == ("flag" if served[row["id"]] >= champion.threshold else "pass")

    cannot = subprocess.run(
        [sys.executable, "-I", "-c", "import shared"], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert cannot.returncode != 0 and b"No module named 'shared'" in cannot.stderr


def test_the_model_says_its_features_and_threshold_and_others_are_refused(
    trained: Trained, tmp_path: Path
) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(trained.models.onnx_file(maintenance.NAME, 1))
    assert score_telemetry.load_model(path).features == FEATURES.numeric
    assert score_telemetry.load_model(path, 0.3).threshold == 0.3
    booster, count = trained.boosted.booster, len(FEATURES.numeric)
    path.write_bytes(lightgbm_to_onnx(booster, count))
    assert score_telemetry.load_model(path).threshold is None
    path.write_bytes(lightgbm_to_onnx(booster, count, 0.25))
    assert score_telemetry.load_model(path).threshold == 0.25
    assert score_telemetry.load_model(path, 0.5).threshold == 0.5

    graph = onnx.load_from_string(trained.models.onnx_file(maintenance.NAME, 1))
    del graph.metadata_props[:]
    path.write_bytes(graph.SerializeToString())
    with pytest.raises(score_telemetry.Refused, match="does not say which features"):
        score_telemetry.load_model(path)
    graph.metadata_props.add(key="features", value='["amount", "rpm"]')
    path.write_bytes(graph.SerializeToString())
    with pytest.raises(score_telemetry.Refused, match=r"does not compute \(amount\)"):
        score_telemetry.load_model(path)
    path.write_bytes(b"not a model")
    with pytest.raises(score_telemetry.Refused, match="not a model onnxruntime can load"):
        score_telemetry.load_model(path)
    with pytest.raises(score_telemetry.Refused, match="No such file"):
        score_telemetry.load_model(tmp_path / "absent.onnx")


# --- Hostile input: skipped with its line, never a traceback ----------------------------


def test_malformed_rows_are_skipped_with_their_line_and_the_others_scored(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(trained.models.onnx_file(maintenance.NAME, 1))
    good = live_readings()[:6]
    lines = csv_text(good).splitlines()
    bad = [
        "b1,2026-11-01T00:00:00Z,dev-0,warm,2.0,300,1500",
        "b2,yesterday,dev-0,60,2.0,300,1500",
        "b3,2026-11-01T00:00:00,dev-0,60,2.0,300,1500",
        "b4,2026-11-01T00:00:00Z,dev-0,60",
        "b5,2026-11-01T00:00:00Z,dev-0,60,2.0,300,1500,extra",
        "b6,2026-11-01T00:00:00Z,dev-0,60,-2.0,300,1500",
        "b7,2026-11-01T00:00:00Z,,60,2.0,300,1500",
        "b8,1969-12-31T23:59:59Z,dev-0,60,2.0,300,1500",
        "b9,2026-11-01T00:00:00Z,dev-0,nan,2.0,300,1500",
        "",
    ]
    text = "\n".join([lines[0], lines[1], *bad, *lines[2:]]) + "\n"
    (tmp_path / "in.csv").write_text(text)
    code = score_telemetry.main(
        [str(model), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]
    )
    errors = capsys.readouterr().err
    assert code == score_telemetry.SOME_SKIPPED
    skipped = dict(re.findall(r"in\.csv: line (\d+): (.*): skipped", errors))
    assert skipped.keys() == {str(line) for line in range(3, 12)}
    for line, what in {
        "3": "temperature_c 'warm' is not a number",
        "4": "time 'yesterday' is not an RFC 3339 time",
        "5": "is not an RFC 3339 time with its zone",
        "6": "missing vibration_mm_s, pressure_kpa, rpm",
        "7": "8 fields for 7 columns",
        "8": "vibration_mm_s '-2.0' is outside 0 to 1e+09",
        "9": "device_id has 1 to 128 characters",
        "10": "before 1970",
        "11": "temperature_c 'nan' is not a number",
    }.items():
        assert what in skipped[line]
    assert "6 readings of 3 devices scored, 9 rows skipped" in errors
    assert "Traceback" not in errors

    (tmp_path / "good.csv").write_text(csv_text(good))
    assert (
        score_telemetry.main(
            [str(model), str(tmp_path / "good.csv"), "-o", str(tmp_path / "expected.csv")]
        )
        == 0
    )
    assert (tmp_path / "out.csv").read_text() == (tmp_path / "expected.csv").read_text()

    (tmp_path / "no-rpm.csv").write_text(
        "time,device_id,temperature_c,vibration_mm_s,pressure_kpa\n"
    )
    assert (
        score_telemetry.main([str(model), str(tmp_path / "no-rpm.csv")]) == score_telemetry.REFUSED
    )
    assert "the header has no rpm column" in capsys.readouterr().err


@pytest.fixture(scope="module")
def model_file(trained: Trained) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.onnx"
        path.write_bytes(trained.models.onnx_file(maintenance.NAME, 1))
        yield path


ROW_TEXT = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
        st.sampled_from(
            ["2026-11-01T00:00:00Z", "dev-1", "1e308", "-0.0", "1" * 400, '"', "\r", "\x00"]
        ),
    ),
    max_size=9,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(ROW_TEXT, max_size=8), st.binary(max_size=60))
def test_any_file_is_scored_skipped_or_refused_never_a_traceback(
    model_file: Path, headed: bool, rows: list[list[str]], noise: bytes
) -> None:
    out = io.StringIO()
    csv.writer(out).writerows([HEADER[1:], *rows] if headed else rows)
    path, written = model_file.with_name("hostile.csv"), model_file.with_name("scores.csv")
    path.write_bytes(out.getvalue().encode() + noise)
    written.unlink(missing_ok=True)
    code = score_telemetry.main([str(model_file), str(path), "-o", str(written)])
    if code == score_telemetry.REFUSED:
        assert not headed and not written.exists()
        return
    assert code in (score_telemetry.ALL_SCORED, score_telemetry.SOME_SKIPPED)
    with written.open(newline="", encoding="utf-8") as f:
        header, *scored = list(csv.reader(f))
    assert header[-2:] == ["score", "decision"] and (header[:-2] == HEADER[1:] or not headed)
    assert all(0.0 <= float(row[-2]) <= 1.0 for row in scored)
