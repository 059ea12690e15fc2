"""The AI gateway: its latency over a direct call, limit accuracy, streamed usage, the SQL gate.

`python -m benchmarks gateway [--requests N] [--quick]` (N: requests a target and caller count,
1,000; `--quick`: at most 200, and small counts elsewhere, a smoke run) prints JSON lines, each
figure beside its baseline from the same run:

- `sqlglot_parse_p50_us` (baseline), `sql_gate_p50_us`, `sql_gate_p99_us`: `check_sql` on the
  analytical queries over gold of `tests/unit/test_ai_sql_gate.py` (`VALID`), against a bare
  sqlglot parse of the same text.
- `limit_ratio_{1,10,100}_callers` (goal at 100: <= 1 + one reservation's share, printed as
  `bound`): threads reserving as fast as they can against the `Limiter` on the embedded
  document store, each reservation settled at once to what an upstream used; the most tokens
  used over any 60 s (`admission_ratio`) divided by the limit, at the time each caller got its
  admission back. The limiter's clock runs `SPEED` times faster than real time so that a few
  seconds hold several windows; `at_limiter_times` is the same at the times the limiter read.
- `noop_{1,10}_caller(s)_p99_ms` (baseline): `GET /api/open` of `benchmarks/apps/noop` on a
  devhost of its own.
- `overhead_{whole,stream}_{1,10}_caller(s)_{p50,p99}_ms` (goals: p99 <= 5 ms at 1 caller, <=
  the no-op's p99 + 5 ms at 10): a chat completion through the gateway (`function_app.py` on
  the devhost, its embedded stores in a fresh data dir) minus the same body sent straight to
  the same upstream (`benchmarks.gateway_load`), quantile against quantile; `callers` callers
  back to back (a closed loop: at 10 the slower server is saturated, and the latency is its
  queue). Each carries the CPU time per request of the gateway's and the upstream's process.
- `first_event_{1,10}_caller(s)_{p50,p99}_ms` (goal p99 <= direct + 5 ms): streamed, the time to
  the first `data:` event through the gateway, beside the direct one.
- `stream_usage_ledger_tokens` (goal: equal): the tokens the ledger (`GET /api/ai/usage`) holds
  for `USAGE_REQUESTS` streamed requests of 1 to 64 words, against the sum of the usage the
  upstream reported for them (and the words asked, `scripted_completion_tokens`).

The client is aiohttp with the same JSON bodies to both (not the openai SDK, whose own cost per
call, 3 ms and more, would dwarf what is measured); the no-op, direct and gateway loads go in
two rounds, each target in turn, so that the machine's other load falls on all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.gateway_load import (
    CHAT_MODEL,
    CHAT_PATH,
    Servers,
    Timed,
    chat_body,
    issue_key,
    reported_usage,
    servers,
    timed_calls,
)
from benchmarks.http_load import Target
from benchmarks.report import Report
from tests.fakes.openai_server import API_KEY

REPORT = Report("gateway", digits=3)
emit = REPORT.emit
progress = REPORT.progress
CALLERS = (1, 10)
GOAL_MS = 5.0
# The limiter's figure: the unit test's app (a reservation of 250 tokens, 2.5% of the limit).
LIMIT, PROMPT, MAX_TOKENS = 10_000, 150, 100
LIMIT_CALLERS = (1, 10, 100)
SPEED = 20
USAGE_REQUESTS = 200


def _callers(count: int) -> str:
    return f"{count}_caller" if count == 1 else f"{count}_callers"


# The SQL gate


def sql_gate(rounds: int) -> None:
    import sqlglot

    from shared.ai.sql_gate import check_sql
    from tests.unit.test_ai_sql_gate import GOLD_TABLES, VALID

    for sql in VALID:  # sqlglot builds its tokenizer and dialect tables on first use
        check_sql(sql, GOLD_TABLES)
    parsed, gated = [], []
    for _ in range(rounds):
        for sql in VALID:
            started = time.perf_counter()
            sqlglot.parse_one(sql, read="duckdb")
            between = time.perf_counter()
            check_sql(sql, GOLD_TABLES)
            parsed.append((between - started) * 1e6)
            gated.append((time.perf_counter() - between) * 1e6)
    parse = statistics.median(parsed)
    details = {"queries": len(VALID), "samples": len(gated)}
    emit("sqlglot_parse_p50_us", parse, "us", role="baseline", **details)
    gate = statistics.median(gated)
    ratio = round(gate / parse, 2)
    emit("sql_gate_p50_us", gate, "us", baseline="sqlglot_parse_p50_us", ratio=ratio, **details)
    p99 = statistics.quantiles(gated, n=100)[98]
    emit("sql_gate_p99_us", p99, "us", baseline="sqlglot_parse_p50_us")


# The limiter's accuracy


class FastClock:
    """Epoch seconds running `speed` times faster than real time from now on."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.epoch = time.time()
        self.started = time.perf_counter()

    def __call__(self) -> float:
        return self.epoch + (time.perf_counter() - self.started) * self.speed


def hammer(folder: Path, callers: int, simulated_s: float, speed: float) -> dict[str, Any]:
    """`callers` threads reserve and settle until `simulated_s` have passed on the limiter's
    clock; the used tokens at the limiter's times and at the callers', and the refusals."""
    from embedded.documents.store import DocumentStore
    from shared.ai.admission import Reservation
    from shared.ai.app_limits import AppLimits
    from shared.ai.apps import App
    from shared.ai.limits import LIMITS_CONTAINER, Limiter

    store = DocumentStore(folder / f"limits-{callers}.sqlite3")
    clock = FastClock(speed)
    limiter = Limiter(store.container(LIMITS_CONTAINER), clock=clock)
    limits = AppLimits(LIMIT, 10**6, 10**12, max_tokens_cap=MAX_TOKENS)
    app = App(f"bench-{callers}", "bench", limits, "2025-01-01T00:00:00.000000Z")
    until = clock() + simulated_s
    admitted: list[tuple[float, float, int]] = []
    refused = [0] * callers
    start = threading.Barrier(callers)

    def call(index: int) -> None:
        used = random.Random(index)
        start.wait()
        while clock() < until:
            found = limiter.reserve(app, PROMPT, MAX_TOKENS)
            returned = clock()
            if not isinstance(found, Reservation):
                refused[index] += 1
                continue
            tokens = PROMPT + used.randint(MAX_TOKENS // 2, MAX_TOKENS)  # what the upstream used
            limiter.settle(found, tokens)
            admitted.append((found.at, returned, tokens))  # list.append is atomic

    workers = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        store.close()
    return {"admitted": admitted, "refused": sum(refused)}


def limit_accuracy(folder: Path, simulated_s: float, speed: float) -> None:
    from shared.ai.rate_window import admission_ratio

    share = (PROMPT + MAX_TOKENS) / LIMIT
    for callers in LIMIT_CALLERS:
        progress(f"limiter: {callers} callers, {simulated_s:g} s at {speed:g} x real time")
        found = hammer(folder, callers, simulated_s, speed)
        admitted = found["admitted"]
        at_returns = admission_ratio([(back, n) for _, back, n in admitted], LIMIT)
        at_limiter = admission_ratio([(at, n) for at, _, n in admitted], LIMIT)
        goal = {"goal": f"<= {1 + share:g}", "met": at_returns <= 1 + share}
        emit(
            f"limit_ratio_{_callers(callers)}",
            at_returns,
            "ratio",
            baseline="at_limiter_times",
            at_limiter_times=round(at_limiter, 4),
            bound=round(1 + share, 4),
            admitted=len(admitted),
            refused=found["refused"],
            simulated_s=simulated_s,
            speed=speed,
            **(goal if callers == LIMIT_CALLERS[-1] else {}),
        )


# Through the gateway and straight to the upstream


def latency(hosts: Servers, count: int) -> None:
    """No-op, direct and gateway loads in two rounds, each target in turn, so that a change in
    the machine's other load falls on all of them; then the figures."""
    _, key = issue_key(hosts, "latency benchmark")
    json_type = {"Content-Type": "application/json"}
    routes = {"noop": (Target("GET", hosts.noop.url("/api/open")), hosts.noop.process.pid)}
    for kind in ("whole", "stream"):
        bodies = [chat_body(stream=kind == "stream", model=CHAT_MODEL)]
        upstream_auth = {**json_type, "Authorization": f"Bearer {API_KEY}"}
        direct_url = hosts.upstream_url + "/v1/chat/completions"
        routes[f"direct_{kind}"] = (
            Target("POST", direct_url, upstream_auth, bodies),
            hosts.upstream_pid,
        )
        app_auth = {**json_type, "api-key": key}
        routes[f"gateway_{kind}"] = (
            Target("POST", hosts.gateway_url(CHAT_PATH), app_auth, bodies),
            hosts.gateway.process.pid,
        )

    def load(name: str, callers: int, count: int) -> Timed:
        target, pid = routes[name]
        return asyncio.run(timed_calls(target, callers=callers, count=count, server_pid=pid))

    for name in routes:  # connections, the SDK's client, tiktoken's tables: not measured
        load(name, 10, min(100, count))
    runs: dict[tuple[str, int], list[Timed]] = {}
    for round_ in range(2):
        progress(f"latency, round {round_ + 1} of 2: {count // 2:,} requests a target")
        for callers in CALLERS:
            for name in routes:
                run = load(name, callers, count // 2)
                runs.setdefault((name, callers), []).append(run)
                progress(f"{name}, {callers} callers: p99 {run.whole.latency_ms(0.99):.2f} ms")
    timed = {target: sum(found[1:], found[0]) for target, found in runs.items()}
    for callers in CALLERS:
        noop = timed["noop", callers].whole
        noop_p99 = noop.latency_ms(0.99)
        emit(
            f"noop_{_callers(callers)}_p99_ms",
            noop_p99,
            "ms",
            role="baseline",
            p50_ms=round(noop.latency_ms(0.5), 3),
            **_cpu(noop),
        )
        for kind in ("whole", "stream"):
            direct, gateway = timed[f"direct_{kind}", callers], timed[f"gateway_{kind}", callers]
            for q in (0.5, 0.99):
                goal = GOAL_MS if callers == 1 else noop_p99 + GOAL_MS
                name = f"overhead_{kind}_{_callers(callers)}"
                _emit_overhead(name, direct, gateway, q, goal, noop_p99 if callers > 1 else None)
        direct, gateway = timed["direct_stream", callers], timed["gateway_stream", callers]
        for q in (0.5, 0.99):
            _emit_first_event(f"first_event_{_callers(callers)}", direct, gateway, q)


def _cpu(load: Any) -> dict[str, Any]:
    figures = load.figures()
    return {k: figures[k] for k in ("requests", "client_cores", "server_cpu_us_per_request")}


def _emit_overhead(
    prefix: str, direct: Timed, gateway: Timed, q: float, goal: float, noop_p99: float | None
) -> None:
    through, straight = gateway.whole.latency_ms(q), direct.whole.latency_ms(q)
    extra: dict[str, Any] = {"gateway_ms": round(through, 3), "direct_ms": round(straight, 3)}
    if q == 0.99:
        extra.update(goal=f"<= {goal:.3f}", met=through - straight <= goal)
        if noop_p99 is not None:
            extra["goal_from"] = f"the no-op's p99 ({noop_p99:.3f}) + {GOAL_MS:g}"
    extra["gateway_cpu_us_per_request"] = _cpu(gateway.whole)["server_cpu_us_per_request"]
    extra["upstream_cpu_us_per_request"] = _cpu(direct.whole)["server_cpu_us_per_request"]
    emit(f"{prefix}_p{round(q * 100)}_ms", through - straight, "ms", baseline="direct", **extra)


def _emit_first_event(prefix: str, direct: Timed, gateway: Timed, q: float) -> None:
    assert direct.first_event is not None and gateway.first_event is not None
    through, straight = gateway.first_event.latency_ms(q), direct.first_event.latency_ms(q)
    extra: dict[str, Any] = {"direct_ms": round(straight, 3), "baseline": "direct"}
    if q == 0.99:
        extra.update(goal=f"<= {straight + GOAL_MS:.3f}", met=through <= straight + GOAL_MS)
    emit(f"{prefix}_p{round(q * 100)}_ms", through, "ms", **extra)


def stream_usage(hosts: Servers, count: int) -> None:
    """`count` streamed requests of 1 to 64 words, half asking for the usage chunk, on an app of
    their own; the ledger's tokens against the upstream's reported usage for them."""
    app, key = issue_key(hosts, "usage benchmark")
    lengths = random.Random(15)
    words = [lengths.randint(1, 64) for _ in range(count)]
    bodies = [
        chat_body(n, stream=True, include_usage=index % 2 == 1, model=CHAT_MODEL)
        for index, n in enumerate(words)
    ]
    before = asyncio.run(reported_usage(hosts.upstream_url))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    target = Target("POST", hosts.gateway_url(CHAT_PATH), headers, bodies)
    asyncio.run(timed_calls(target, callers=10, count=count))
    after = asyncio.run(reported_usage(hosts.upstream_url))
    upstream = {name: after[name] - before[name] for name in after}
    ledger = _ledger(hosts, app, count)
    tokens = ledger["prompt_tokens"] + ledger["completion_tokens"]
    reported = upstream["prompt_tokens"] + upstream["completion_tokens"]
    emit(
        "stream_usage_ledger_tokens",
        tokens,
        "tokens",
        baseline="upstream_reported_tokens",
        upstream_reported_tokens=reported,
        ledger={k: ledger[k] for k in ("requests", "prompt_tokens", "completion_tokens")},
        upstream=upstream,
        scripted_completion_tokens=sum(words),
        by_outcome=ledger.get("by_outcome"),
        goal="== upstream",
        met=tokens == reported
        and ledger["requests"] == upstream["requests"] == count
        and upstream["completion_tokens"] == sum(words),
    )


def _ledger(hosts: Servers, app: str, entries: int, timeout_s: float = 30) -> dict[str, Any]:
    """The ledger's sums for `app` once it holds `entries` (written just after each answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = requests.get(hosts.gateway_url("/api/ai/usage"), params={"app": app}, timeout=30)
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        if found["requests"] >= entries or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def http(folder: Path, count: int, usage_requests: int) -> None:
    progress("starting the upstream and two devhosts")
    with servers(folder) as hosts:
        latency(hosts, count)
        progress(f"streamed usage: {usage_requests} requests")
        stream_usage(hosts, usage_requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks gateway", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument(
        "--requests", type=int, default=1000, help="requests a target and caller count (1,000)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    args = parser.parse_args(argv)
    if args.requests < 10:
        parser.error("--requests is at least 10")
    count = min(args.requests, 200) if args.quick else args.requests
    with tempfile.TemporaryDirectory(prefix="gateway-bench-", dir=Path.cwd()) as name:
        folder = Path(name)
        progress("the SQL gate")
        sql_gate(rounds=2 if args.quick else 20)
        limit_accuracy(folder, 70 if args.quick else 150, 200 if args.quick else SPEED)
        http(folder, count, 20 if args.quick else USAGE_REQUESTS)
    return 0
