"""Post realistic traffic to `POST /api/events`: `python -m benchmarks.simulate --rate 50`.

Events of every contract with learnable patterns (see `benchmarks.traffic`), in batches, at a
steady rate, until stopped or `--duration` ends; chargebacks and failure reports follow,
late, as in real life (`--label-delay-scale` shortens the wait). `--seed` makes the event
content deterministic, and `--start` the event times too. `--print N` writes N events as JSON
lines to stdout instead of posting.

`--backfill-days N` posts N days of history instead, as fast as the host takes it: event
times from N days ago to now, `--backfill-rate` events per simulated second (default 1, about
86,000 a day), labels included where they are due before now, so that models can be trained
at once. The function key comes from `--key`, `EVENTS_FUNCTION_KEY`, or
the devhost's `keys.json` under the data dir.

`--drift-at WHEN` injects drift, so that monitoring flags it, retraining starts and the gate
decides: from event time WHEN on, payment amounts are multiplied by `--drift-amount-factor`
(default 3; card testing's tiny probes stay tiny), telemetry temperatures raised by
`--drift-temperature-c` (default 8) and vibrations multiplied by `--drift-vibration-factor`
(default 1.5), enough to move those features' PSI well past 0.25. WHEN is an ISO 8601 time
with its zone (2024-05-01T12:00:00Z, ...+02:00) or an offset from the run's first event:
`+90s`, `+10m`, `+2h`, `+3d` (the first event is the moment posting starts, live; `--start`
if given; N days ago with `--backfill-days`). Live, a line on stderr says when drift begins.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from benchmarks.traffic import (
    DRIFT_FACTORS,
    DRIFT_TEMPERATURES_C,
    Drift,
    Traffic,
    iso,
    simulated_clock,
    wall_clock,
)

BATCH = "application/cloudevents-batch+json"
OFFSET = re.compile(r"\+(\d{1,7}(?:\.\d{1,6})?)([smhd])", re.ASCII)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
LONGEST_OFFSET = dt.timedelta(days=366)
DEFAULT_DRIFT = Drift()


def _quoted(text: str) -> str:
    """A user's argument in an error message, cut short."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _iso_time(text: str) -> dt.datetime:
    # fromisoformat stops reading at a NUL character: an ISO time is printable ASCII.
    try:
        if text.isascii() and text.isprintable():
            return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {_quoted(text)}")


def start_time(text: str) -> dt.datetime:
    """`--start`: an ISO 8601 time, UTC without a zone."""
    moment = _iso_time(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def drift_time(text: str) -> dt.datetime | dt.timedelta:
    """`--drift-at`: an ISO 8601 time with its zone, in UTC, or an offset from the run's first
    event (`+10m`)."""
    if text.startswith("+"):
        match = OFFSET.fullmatch(text)
        if match is None:
            raise argparse.ArgumentTypeError(
                f"an offset is + then a number and s, m, h or d (+10m), not {_quoted(text)}"
            )
        offset = dt.timedelta(seconds=float(match[1]) * UNIT_SECONDS[match[2]])
        if offset > LONGEST_OFFSET:
            raise argparse.ArgumentTypeError(f"an offset is at most {LONGEST_OFFSET.days} days")
        return offset
    moment = _iso_time(text)
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"give the time zone (Z, +02:00...) of {_quoted(text)}, or an offset such as +10m"
        )
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"{_quoted(text)} is outside years 1 to 9999 in UTC"
        ) from None


def bounded(low: float, high: float) -> Callable[[str], float]:
    """An argument type: a number from `low` to `high`."""

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {_quoted(text)}") from None
        if not low <= value <= high:  # NaN fails it too
            raise argparse.ArgumentTypeError(f"from {low:g} to {high:g}, not {_quoted(text)}")
        return value

    return number


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulate", description=__doc__)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (default 20)")
    parser.add_argument("--url", default="http://127.0.0.1:7071/api/events")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="makes the events repeatable (default: a fresh seed, printed, so that a restart "
        "sends new event ids)",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    parser.add_argument("--batch", type=int, default=500, help="most events per request")
    parser.add_argument("--key", default=os.environ.get("EVENTS_FUNCTION_KEY"))
    parser.add_argument("--data-dir", default=os.environ.get("PLATFORM_DATA_DIR", ".data"))
    parser.add_argument("--fraud-rate", type=float, default=0.02)
    parser.add_argument(
        "--no-labels", action="store_true", help="leave out the simlabel ground truth"
    )
    parser.add_argument(
        "--start", type=start_time, help="ISO time of the first event (default: now, live)"
    )
    parser.add_argument(
        "--label-delay-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiplies the delays of chargebacks (12 h to 14 days) and failure reports "
        "(5 min to 2 h); 0.001 makes days minutes (default 1)",
    )
    parser.add_argument(
        "--backfill-days",
        type=float,
        default=None,
        metavar="N",
        help="post N days of history up to now, as fast as the host takes it, then stop",
    )
    parser.add_argument(
        "--backfill-rate",
        type=float,
        default=1.0,
        metavar="R",
        help="events per simulated second of history (default 1)",
    )
    parser.add_argument(
        "--drift-at",
        type=drift_time,
        metavar="WHEN",
        help="shift amounts and telemetry from WHEN on: an ISO 8601 time with its zone, or "
        "+N s, m, h or d after the first event (+10m)",
    )
    factors = bounded(*DRIFT_FACTORS)
    parser.add_argument(
        "--drift-amount-factor",
        type=factors,
        metavar="X",
        help="multiplies payment amounts after --drift-at "
        f"(default {DEFAULT_DRIFT.amount_factor:g}, {DRIFT_FACTORS[0]:g} to {DRIFT_FACTORS[1]:g})",
    )
    parser.add_argument(
        "--drift-temperature-c",
        type=bounded(*DRIFT_TEMPERATURES_C),
        metavar="C",
        help="added to temperatures, in degrees Celsius, after --drift-at "
        f"(default {DEFAULT_DRIFT.temperature_c:g}, "
        f"{DRIFT_TEMPERATURES_C[0]:g} to {DRIFT_TEMPERATURES_C[1]:g})",
    )
    parser.add_argument(
        "--drift-vibration-factor",
        type=factors,
        metavar="X",
        help="multiplies vibrations after --drift-at "
        f"(default {DEFAULT_DRIFT.vibration_factor:g}, same range as the amount factor)",
    )
    parser.add_argument("--print", type=int, metavar="N", help="print N events, post nothing")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for the host's /api/health to answer 200 before posting",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.batch <= 0:
        parser.error("--rate and --batch must be positive")
    if not 0 < args.label_delay_scale <= 1000:
        parser.error("--label-delay-scale is above 0 and at most 1000")
    if args.backfill_days is not None:
        if not 0 < args.backfill_days <= 366 or not 0 < args.backfill_rate <= 1000:
            parser.error("--backfill-days is above 0 and at most 366, --backfill-rate 0 to 1000")
        if args.start:
            parser.error("--backfill-days starts N days ago: leave out --start")
    tuning = {
        "amount_factor": args.drift_amount_factor,
        "temperature_c": args.drift_temperature_c,
        "vibration_factor": args.drift_vibration_factor,
    }
    tuning = {name: value for name, value in tuning.items() if value is not None}
    if tuning and args.drift_at is None:
        parser.error("the --drift-... options tune the drift of --drift-at: give it too")
    args.drift = Drift(**tuning)
    if args.start and isinstance(args.drift_at, dt.timedelta):
        try:
            args.drift_at = args.start + args.drift_at
        except OverflowError:
            parser.error("--start plus the --drift-at offset is past the year 9999")
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    return args


def function_key(args: argparse.Namespace) -> str | None:
    if args.key:
        return str(args.key)
    keys = Path(args.data_dir) / "devhost" / "keys.json"
    if keys.exists():
        return str(json.loads(keys.read_text(encoding="utf-8"))["hostKeys"]["default"])
    return None


class Poster:
    """Posts batches and counts what the API said."""

    def __init__(self, url: str, key: str | None) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["content-type"] = BATCH
        if key:
            self.session.headers["x-functions-key"] = key
        self.sent = self.accepted = self.rejected = self.failed_requests = 0

    def post(self, events: list[dict[str, Any]]) -> None:
        self.sent += len(events)
        try:
            response = self.session.post(self.url, data=json.dumps(events).encode(), timeout=30)
        except requests.RequestException as error:
            self.failed_requests += 1
            progress(f"request failed: {error}")
            return
        if response.status_code != 202:
            self.failed_requests += 1
            progress(f"HTTP {response.status_code}: {response.text[:200]}")
            return
        answer = response.json()
        self.accepted += answer["accepted"]
        self.rejected += len(answer["rejected"])


def wait_for_host(events_url: str, timeout_s: float) -> bool:
    """Poll `<base>/api/health` next to the events URL until it answers 200."""
    health = events_url.rsplit("/", 1)[0] + "/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(health, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.5)
    return False


def progress(message: str) -> None:
    print(f"[simulate] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    progress(f"seed {args.seed} (--seed {args.seed} sends the same events again)")
    if args.print is None and args.wait and not wait_for_host(args.url, args.wait):
        progress(f"the host did not become healthy within {args.wait:g} s")
        return 1
    now = dt.datetime.now(dt.UTC)
    clock: Iterator[dt.datetime]
    if args.backfill_days is not None:
        start = now - dt.timedelta(days=args.backfill_days)
        clock = itertools.takewhile(
            lambda moment: moment < now, simulated_clock(start, args.backfill_rate)
        )
    elif args.start:
        start, clock = args.start, simulated_clock(args.start, args.rate)
    else:
        start, clock = now, wall_clock()
    drift_at = start + args.drift_at if isinstance(args.drift_at, dt.timedelta) else args.drift_at
    traffic = Traffic(
        args.seed,
        fraud_rate=args.fraud_rate,
        labels=not args.no_labels,
        label_delay_scale=args.label_delay_scale,
        drift_at=drift_at,
        drift=args.drift,
    )
    if drift_at is not None:
        progress(f"drift from {iso(drift_at)} on: {args.drift}")
    events = traffic.events(clock)
    if args.print is not None:
        for event in itertools.islice(events, args.print):
            print(json.dumps(event))
        return 0
    if args.backfill_days is not None:
        return backfill(args, traffic, events)
    return post_live(args, traffic, events)


def post_live(args: argparse.Namespace, traffic: Traffic, events: Iterator[dict[str, Any]]) -> int:
    """Post at `--rate` until `--duration` ends or the user stops it."""
    progress(f"posting {args.rate:g} events/s to {args.url}")
    poster = Poster(args.url, function_key(args))
    began = time.monotonic()
    due = 0.0
    last_report = began
    drift_told = False
    # Each tick sends what the rate owes since the last one, so a slow request is caught up.
    interval = max(0.05, min(1.0, args.batch / args.rate))
    while args.duration is None or time.monotonic() - began < args.duration:
        due += args.rate * interval
        count = int(due)
        due -= count
        while count > 0:
            size = min(count, args.batch)
            poster.post(list(itertools.islice(events, size)))
            count -= size
        if traffic.drift_began is not None and not drift_told:
            drift_told = True
            progress(
                f"drift began at {iso(traffic.drift_began)}: {args.drift}; monitoring should "
                "flag it, then retraining start"
            )
        now = time.monotonic()
        if now - last_report >= 5:
            last_report = now
            progress(
                f"{poster.sent} sent, {poster.accepted} accepted, {poster.rejected} rejected, "
                f"{poster.failed_requests} failed requests"
            )
        time.sleep(max(0.0, interval - (time.monotonic() - now)))
    progress(f"done: {poster.sent} sent, {poster.accepted} accepted, {poster.rejected} rejected")
    return 0 if poster.failed_requests == 0 else 1


def backfill(args: argparse.Namespace, traffic: Traffic, history: Iterator[dict[str, Any]]) -> int:
    """Post the history from `--backfill-days` ago to now, as fast as the host takes it."""
    expected = int(args.backfill_days * 86_400 * args.backfill_rate)
    progress(f"posting about {expected:,} events of {args.backfill_days:g} days to {args.url}")
    poster = Poster(args.url, function_key(args))
    began = last_report = time.monotonic()
    while batch := list(itertools.islice(history, args.batch)):
        poster.post(batch)
        if time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            progress(f"{poster.sent:,} sent, up to {batch[-1]['time']}")
    seconds = time.monotonic() - began
    progress(
        f"done in {seconds:.0f} s: {poster.sent:,} sent, {poster.accepted:,} accepted, "
        f"{poster.rejected:,} rejected; {traffic.labels_pending():,} labels not yet due"
    )
    return 0 if poster.failed_requests == 0 else 1


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
