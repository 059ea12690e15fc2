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
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.traffic import Traffic, simulated_clock, wall_clock

BATCH = "application/cloudevents-batch+json"


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
    parser.add_argument("--start", help="ISO time of the first event (default: now, live)")
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
    traffic = Traffic(
        args.seed,
        fraud_rate=args.fraud_rate,
        labels=not args.no_labels,
        label_delay_scale=args.label_delay_scale,
    )
    if args.backfill_days is not None:
        return backfill(args, traffic)
    if args.start:
        start = dt.datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        clock = simulated_clock(start if start.tzinfo else start.replace(tzinfo=dt.UTC), args.rate)
    else:
        clock = wall_clock()
    events = traffic.events(clock)
    if args.print is not None:
        for event in itertools.islice(events, args.print):
            print(json.dumps(event))
        return 0
    if args.wait and not wait_for_host(args.url, args.wait):
        progress(f"the host did not become healthy within {args.wait:g} s")
        return 1
    progress(f"posting {args.rate:g} events/s to {args.url}")
    poster = Poster(args.url, function_key(args))
    began = time.monotonic()
    due = 0.0
    last_report = began
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


def backfill(args: argparse.Namespace, traffic: Traffic) -> int:
    """Post the history from `--backfill-days` ago to now, as fast as the host takes it."""
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=args.backfill_days)
    ticks = itertools.takewhile(
        lambda moment: moment < now, simulated_clock(start, args.backfill_rate)
    )
    history = traffic.events(ticks)
    if args.print is not None:
        for event in itertools.islice(history, args.print):
            print(json.dumps(event))
        return 0
    if args.wait and not wait_for_host(args.url, args.wait):
        progress(f"the host did not become healthy within {args.wait:g} s")
        return 1
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
