"""Identity and audit: token checks, the guarded no-op route, audit appends.

`python -m benchmarks auth [--tokens N] [--seconds S] [--records N]` prints JSON lines:

- `pyjwt_decode_p50_us` (baseline): a bare PyJWT RS256 decode with the key in hand.
- `token_verify_p50_us`, `token_verify_p99_us` (goal: p50 <= 1.3 x the bare decode): the
  platform's validator on tokens it has not seen, keys cached.
- `token_repeat_p50_us` (goal: <= 0.1 x the bare decode): a token it has verified before.
- `noop_rps_auth_off` (baseline) and `noop_rps_auth_on` (goal: >= 0.8 x): a no-op HTTP function
  through the devhost, open, and guarded in `entra` mode (a bearer token checked, an audit
  record written per request), with 16 concurrent keep-alive clients.
- `sqlite_inserts_per_s` (baseline: a row per transaction, WAL, `synchronous=FULL`),
  `store_batches_per_s` (a head replace and a record create per batch, without the trail),
  `audit_appends_per_s` (one record at a time, each durable before the next: privileged
  actions), `audit_submits_per_s` (records queued and group-committed: requests), and
  `audit_verify_records_per_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import jwt

from benchmarks.report import Report

REPORT = Report("auth", digits=1)
emit = REPORT.emit
progress = REPORT.progress
PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOOP_APP = Path(__file__).resolve().parent / "apps" / "noop"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def tokens(folder: Path, count: int) -> None:
    from shared.identity.tokens import JwksKeys, TokenRules, TokenValidator
    from tests.tokens import AUDIENCE, ISSUER, TENANT, Issuer

    issuer = Issuer(folder / "issuer")
    minted = [issuer.token(jti=str(uuid.uuid4())) for _ in range(count)]
    public = issuer.private.public_key()
    bare = []
    for token in minted:
        started = time.perf_counter()
        jwt.decode(token, public, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
        bare.append((time.perf_counter() - started) * 1e6)
    validator = TokenValidator(
        TokenRules.entra(TENANT, [AUDIENCE]), JwksKeys.from_url(str(issuer.jwks_path))
    )
    validator.verify(issuer.token())  # the keys fetched once
    first = []
    for token in minted:
        started = time.perf_counter()
        validator.verify(token)
        first.append((time.perf_counter() - started) * 1e6)
    repeat = []
    for _ in range(count):
        started = time.perf_counter()
        validator.verify(minted[0])
        repeat.append((time.perf_counter() - started) * 1e6)
    decode = statistics.median(bare)
    emit("pyjwt_decode_p50_us", decode, "us", role="baseline")
    p50 = statistics.median(first)
    emit(
        "token_verify_p50_us",
        p50,
        "us",
        baseline="pyjwt_decode_p50_us",
        ratio=round(p50 / decode, 3),
        goal="<= 1.3",
    )
    emit("token_verify_p99_us", _percentile(first, 0.99), "us", baseline="pyjwt_decode_p50_us")
    again = statistics.median(repeat)
    emit(
        "token_repeat_p50_us",
        again,
        "us",
        baseline="pyjwt_decode_p50_us",
        ratio=round(again / decode, 4),
        goal="<= 0.1",
    )


async def _load(url: str, headers: dict[str, str], seconds: float, clients: int = 16) -> float:
    import aiohttp

    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(headers=headers) as session:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return done / (time.perf_counter() - started)


def noop(folder: Path, seconds: float) -> None:
    from tests.devhost_process import DevhostProcess
    from tests.fakes.loopback import LoopbackServer, Response
    from tests.tokens import AUDIENCE, TENANT, Issuer

    issuer = Issuer(folder / "noop-issuer")
    with LoopbackServer(tls_dir=folder / "tls") as keys:
        keys.route("GET", "/keys", lambda _: Response(200, {"keys": [issuer.jwk()]}))
        env = {
            "PLATFORM_DATA_DIR": str(folder / "platform"),
            "PLATFORM_AUTH": "entra",
            "ENTRA_TENANT_ID": TENANT,
            "ENTRA_AUDIENCE": AUDIENCE,
            "ENTRA_JWKS_URL": keys.url + "/keys",
            "SSL_CERT_FILE": str(keys.cert_path),
            "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        host = DevhostProcess(NOOP_APP, folder / "host", env=env).wait_ready()
        try:
            token = {"Authorization": f"Bearer {issuer.token()}"}
            asyncio.run(_load(host.url("/api/open"), {}, 1.0))  # warm up both
            asyncio.run(_load(host.url("/api/guarded"), token, 1.0))
            progress(f"no-op function, open then guarded, {seconds:.0f} s each")
            off = asyncio.run(_load(host.url("/api/open"), {}, seconds))
            on = asyncio.run(_load(host.url("/api/guarded"), token, seconds))
        finally:
            host.stop()
    emit("noop_rps_auth_off", off, "requests/s", role="baseline")
    emit(
        "noop_rps_auth_on",
        on,
        "requests/s",
        baseline="noop_rps_auth_off",
        ratio=round(on / off, 3),
        goal=">= 0.8",
    )


def audit(folder: Path, records: int) -> None:
    from benchmarks.audit_figures import measure

    for figure in measure(records, folder / "audit"):
        figure = dict(figure)
        figure.pop("benchmark", None)
        emit(
            str(figure.pop("metric")), float(figure.pop("value")), str(figure.pop("unit")), **figure
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks auth", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--tokens", type=int, default=2000, help="tokens verified (2,000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per route (10 s)")
    parser.add_argument("--records", type=int, default=5000, help="audit records (5,000)")
    args = parser.parse_args(argv)
    if args.tokens < 10 or args.seconds <= 0 or args.records < 1:
        parser.error("--tokens is at least 10, --seconds positive, --records at least 1")
    with tempfile.TemporaryDirectory(prefix="auth-bench-", dir=Path.cwd()) as name:
        folder = Path(name)
        progress(f"{args.tokens:,} tokens: bare decodes, first verifications, repeats")
        tokens(folder, args.tokens)
        audit(folder, args.records)
        noop(folder, args.seconds)
    return 0
