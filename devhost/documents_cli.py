"""`python -m devhost documents`: the embedded document store from the command line, as Data
Explorer shows Cosmos DB in the portal: containers, one document, a query, a delete.

The store is `<data dir>/documents/<database>.sqlite3` (database `platform` unless told); it
may be read while the devhost runs. A partition key given on the command line is read as JSON
when it parses (`42`, `true`, `null`), else as a string.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from embedded.documents.model import Condition, ContainerSpec, DocumentStoreError, Query
from embedded.documents.store import DocumentStore, database_path

DATABASE = "platform"
_OPERATORS = ("<=", ">=", "!=", "=", "<", ">")


def add_parser(commands: Any) -> None:
    """Register the `documents` command on the devhost's subparsers."""
    parser = commands.add_parser("documents", help="look at and edit the embedded documents")
    parser.add_argument("--data-dir", type=Path, default=Path(".data"), help="the data dir")
    parser.add_argument("--database", default=DATABASE, help="the database (file) name")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("containers", help="the containers, with their partition keys")
    show = actions.add_parser("show", help="one document")
    show.add_argument("container")
    show.add_argument("id")
    show.add_argument("--pk", required=True, help="its partition key value")
    query = actions.add_parser("query", help="documents matching path=value conditions")
    query.add_argument("container")
    query.add_argument("--pk", help="one partition (default: across all)")
    query.add_argument(
        "--where", action="append", default=[], help="e.g. /status=open or /score>=0.9"
    )
    query.add_argument("--top", type=int, default=20)
    delete = actions.add_parser("delete", help="delete one document")
    delete.add_argument("container")
    delete.add_argument("id")
    delete.add_argument("--pk", required=True, help="its partition key value")


def run(arguments: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Carry out the `documents` command; 0 on success, 1 when the store refused."""
    path = database_path(arguments.data_dir, arguments.database)
    if not path.exists():
        print(f"devhost documents: no database {arguments.database!r} at {path}", file=sys.stderr)
        return 1
    store = DocumentStore(path)
    try:
        return _run(store, arguments, out)
    except DocumentStoreError as error:
        print(f"devhost documents: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _run(store: DocumentStore, arguments: argparse.Namespace, out: TextIO) -> int:
    specs = {spec.name: spec for spec in _specs(store)}
    if arguments.action == "containers":
        for each in specs.values():
            ttl = "off" if each.default_ttl is None else each.default_ttl
            out.write(f"{each.name}  partition key {each.partition_key_path}  ttl {ttl}\n")
        if not specs:
            out.write("(no containers)\n")
        return 0
    spec = specs.get(arguments.container)
    if spec is None:
        known = ", ".join(specs) or "none"
        print(f"devhost documents: no container {arguments.container!r} ({known})", file=sys.stderr)
        return 1
    container = store.container(spec)
    if arguments.action == "show":
        out.write(json.dumps(container.read(arguments.id, _value(arguments.pk)), indent=2) + "\n")
        return 0
    if arguments.action == "delete":
        container.delete(arguments.id, _value(arguments.pk))
        out.write(f"deleted {spec.name}/{arguments.id}\n")
        return 0
    where = [_condition(text) for text in arguments.where]
    partition = None if arguments.pk is None else _value(arguments.pk)
    page = container.query(
        Query(
            where=where,
            partition_key=partition,
            cross_partition=partition is None,
            page_size=max(1, min(arguments.top, 1000)),
        )
    )
    for document in page.documents:
        out.write(json.dumps(document) + "\n")
    if page.continuation is not None:
        out.write(f"(more: raise --top past {arguments.top})\n")
    return 0


def _specs(store: DocumentStore) -> list[ContainerSpec]:
    rows = store.connection().execute(
        "SELECT name, partition_key_path, default_ttl FROM containers ORDER BY name"
    )
    return [ContainerSpec(name, path, ttl) for name, path, ttl in rows]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _condition(text: str) -> Condition:
    for operator in _OPERATORS:
        path, found, value = text.partition(operator)
        if found:
            return Condition(path.strip(), operator, _value(value.strip()))  # type: ignore[arg-type]
    raise DocumentStoreError(f"a condition looks like /path=value or /path>=value, not {text!r}")
