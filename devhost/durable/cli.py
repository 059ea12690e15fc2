"""`python -m devhost instances`: list, show, terminate and purge orchestrations of a devhost."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, TextIO

from devhost.durable.links import WEBHOOK_PATH

DEFAULT_URL = "http://127.0.0.1:7071"


class CliError(Exception):
    """The devhost could not be reached or refused the request."""


def _connection_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    # Accepted before the action (`instances --url U list`) and after it (`instances list
    # --url U`); after it, an option left out keeps the value given before (SUPPRESS).
    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--url", default=default(DEFAULT_URL), help="the running devhost")
    parser.add_argument(
        "--code",
        default=default(None),
        help="the durabletask_extension system key, if keys are enforced",
    )
    parser.add_argument("--task-hub", default=default(None), help="defaults to the host's hub")


def add_parser(commands: Any) -> None:
    """Register the `instances` command on the devhost's subparsers."""
    parser = commands.add_parser("instances", help="list and manage durable orchestrations")
    _connection_options(parser, defaults=True)
    shared = argparse.ArgumentParser(add_help=False)
    _connection_options(shared, defaults=False)
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        found: argparse.ArgumentParser = actions.add_parser(name, help=help, parents=[shared])
        return found

    listing = action("list", "a table of instances, oldest first")
    listing.add_argument("--status", action="append", default=[], help="e.g. Running; repeatable")
    listing.add_argument("--prefix", default=None, help="instance id prefix")
    listing.add_argument("--since", default=None, help="created at or after (ISO 8601)")
    listing.add_argument("--top", type=int, default=100)
    show = action("show", "one instance with its history")
    show.add_argument("instance_id")
    show.add_argument("--output", action="store_true", help="include inputs and results")
    terminate = action("terminate", "terminate a running instance")
    terminate.add_argument("instance_id")
    terminate.add_argument("--reason", default="terminated by an operator")
    purge = action("purge", "delete finished instances and their history")
    purge.add_argument("instance_id", nargs="?")
    purge.add_argument("--status", action="append", default=[], help="with no id: these statuses")
    purge.add_argument("--since", default="1970-01-01T00:00:00Z", help="with no id: created after")


def run(arguments: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Carry out the `instances` command; 0 on success, 1 when the devhost refused."""
    try:
        if arguments.action == "list":
            return _list(arguments, out)
        if arguments.action == "show":
            return _show(arguments, out)
        if arguments.action == "terminate":
            path = f"/instances/{_quote(arguments.instance_id)}/terminate"
            _call(arguments, "POST", path, {"reason": arguments.reason})
            print(f"terminating {arguments.instance_id}", file=out)
            return 0
        if arguments.instance_id:
            _, body = _call(arguments, "DELETE", f"/instances/{_quote(arguments.instance_id)}", {})
        else:
            query = {"createdTimeFrom": arguments.since}
            if arguments.status:
                query["runtimeStatus"] = ",".join(arguments.status)
            _, body = _call(arguments, "DELETE", "/instances", query)
        print(f"purged {body['instancesDeleted']} instance(s)", file=out)
        return 0
    except CliError as error:
        print(f"devhost instances: {error}", file=sys.stderr)
        return 1


def _list(arguments: argparse.Namespace, out: TextIO) -> int:
    query = {"top": str(arguments.top), "showInput": "false"}
    if arguments.status:
        query["runtimeStatus"] = ",".join(arguments.status)
    if arguments.prefix:
        query["instanceIdPrefix"] = arguments.prefix
    if arguments.since:
        query["createdTimeFrom"] = arguments.since
    _, body = _call(arguments, "GET", "/instances", query)
    rows = [
        [s["instanceId"], s["name"], s["runtimeStatus"], s["createdTime"], s["lastUpdatedTime"]]
        for s in body
    ]
    out.write(table(["INSTANCE", "NAME", "STATUS", "CREATED", "UPDATED"], rows))
    return 0


def _show(arguments: argparse.Namespace, out: TextIO) -> int:
    query = {"showHistory": "true", "showHistoryOutput": str(arguments.output).lower()}
    _, body = _call(arguments, "GET", f"/instances/{_quote(arguments.instance_id)}", query)
    fields = ["name", "instanceId", "runtimeStatus", "createdTime", "lastUpdatedTime"]
    for field in fields:
        out.write(f"{field:<16}{body.get(field)}\n")
    for field in ("input", "customStatus", "output"):
        # Pretty-printed: an orchestration's input or output is often a whole document.
        text = json.dumps(body.get(field), indent=2).replace("\n", "\n" + " " * 16)
        out.write(f"{field:<16}{text}\n")
    rows = []
    for item in body.get("historyEvents", []):
        detail = item.get("FunctionName") or item.get("Name") or item.get("FireAt") or ""
        extra = item.get("Reason") or item.get("OrchestrationStatus") or ""
        if arguments.output and "Result" in item:
            extra = json.dumps(item["Result"])
        rows.append([item["Timestamp"], item["EventType"], str(detail), _clip(str(extra))])
    out.write("\n" + table(["TIME", "EVENT", "NAME", "DETAIL"], rows))
    return 0


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, columns padded to their widest cell."""
    widths = [max([len(h), *(len(str(r[i])) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        cells = (str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    if not rows:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def _clip(text: str, limit: int = 60) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _call(
    arguments: argparse.Namespace, method: str, path: str, query: dict[str, str]
) -> tuple[int, Any]:
    query = dict(query)
    if arguments.code:
        query["code"] = arguments.code
    if arguments.task_hub:
        query["taskHub"] = arguments.task_hub
    url = f"{arguments.url.rstrip('/')}{WEBHOOK_PATH}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode("utf-8")
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", errors="replace")
        if error.code in (202, 400, 500) and method == "GET" and text.startswith("{"):
            return error.code, json.loads(text)  # status of running or failed instances
        try:
            message = json.loads(text).get("message", text)
        except ValueError:
            message = text
        raise CliError(f"{method} {path}: HTTP {error.code}: {message}") from error
    except (urllib.error.URLError, OSError) as error:
        raise CliError(f"cannot reach the devhost at {arguments.url}: {error}") from error
