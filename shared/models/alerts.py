"""Alerts: an event whose score is over its model's threshold raises one, exactly once per event
across redeliveries: a document in the `alerts` container, and a CloudEvent on the `alerts` hub
for downstream consumers.

- The document's id is a hash of the model and the event id, so a redelivered batch finds it
  there instead of raising it twice; a batch's new alerts are written together.
- The hub event goes out after the document is written, and the document then records it
  (`published`); a redelivery publishes again only what was never marked, so a consumer sees an
  alert more than once only after a crash between the send and the mark, with the same
  CloudEvent id (consumers deduplicate on it, as on any Event Hubs stream).
- An alert carries the type (the model), the entity, the score and threshold, the model's
  version, the event's id and time, when it was raised, and the features that pushed the score
  up most (TreeSHAP contributions of the native model, for the few rows that alert).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.documents.port import (
    Condition,
    ContainerSpec,
    DocumentContainer,
    Json,
    Query,
)
from shared.events.contracts import CONTRACTS
from shared.events.publisher import OutgoingEvent
from shared.events.sync_publisher import SyncPublisher

ALERTS_CONTAINER = ContainerSpec("alerts", "/entity")
ALERTS_HUB = "alerts"
ALERT_EVENT_TYPE = "platform.alert"
ALERTING = tuple(sorted({c.scored_by for c in CONTRACTS if c.scored_by}))  # models that alert
TOP_FEATURES = 3
MAX_TOP = 500
MAX_ENTITY = 128
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class AlertCandidate:
    """A scored event over its threshold."""

    model: str
    version: int
    entity: str
    score: float
    threshold: float
    event_id: str
    event_time: str
    top_features: list[dict[str, float | str]]


def stamp(moment: dt.datetime) -> str:
    """A time as alerts keep it: UTC, always with microseconds, so that text order is time's."""
    return moment.astimezone(dt.UTC).strftime(TIME_FORMAT)


def alert_id(model: str, event_id: str) -> str:
    digest = hashlib.sha256(f"{model}\x00{event_id}".encode("utf-8", "surrogatepass"))
    return f"{model}-{digest.hexdigest()[:40]}"


class AlertBook:
    """The alerts container and the hub they are announced on."""

    def __init__(self, container: DocumentContainer, publisher: SyncPublisher) -> None:
        self.container = container
        self.publisher = publisher

    def raise_alerts(self, candidates: Sequence[AlertCandidate], now: dt.datetime) -> int:
        """Write each candidate's alert (once), announce the ones never announced; how many
        alerts are new."""
        fresh, unannounced = [], []
        documents = [_document(candidate, now) for candidate in candidates]
        keys = [(str(document["id"]), document["entity"]) for document in documents]
        for document, existing in zip(documents, self.container.read_many(keys), strict=True):
            if existing is None:
                fresh.append(document)
            elif not existing.get("published"):
                unannounced.append(existing)
        # One write for the batch's new alerts (one transaction locally); only the instance
        # that owns the partition writes its events' alerts, so nothing races the read above.
        unannounced += self.container.upsert_many(fresh)
        if unannounced:
            self.publisher.publish_now(ALERTS_HUB, [_event(d) for d in unannounced])
            self.container.upsert_many([{**_plain(d), "published": True} for d in unannounced])
        return len(fresh)

    def search(
        self,
        *,
        type: str | None = None,
        entity: str | None = None,
        since: dt.datetime | None = None,
        top: int = 50,
        continuation: str | None = None,
    ) -> tuple[list[dict[str, Json]], str | None]:
        """Alerts newest first, filtered; the continuation of the next page."""
        where = []
        if type is not None:
            where.append(Condition("/type", "=", type))
        if since is not None:
            where.append(Condition("/raised_at", ">=", stamp(since)))
        query = Query(
            where=where,
            order_by=[("/raised_at", True)],
            partition_key=entity,
            cross_partition=entity is None,
            page_size=min(max(1, top), MAX_TOP),
        )
        page = self.container.query(query, continuation)
        return [_plain(d) for d in page.documents], page.continuation


def _document(candidate: AlertCandidate, now: dt.datetime) -> dict[str, Json]:
    return {
        "id": alert_id(candidate.model, candidate.event_id),
        "entity": candidate.entity,
        "type": candidate.model,
        "score": candidate.score,
        "threshold": candidate.threshold,
        "model_version": candidate.version,
        "event_id": candidate.event_id,
        "event_time": candidate.event_time,
        "raised_at": stamp(now),
        "top_features": [dict(f) for f in candidate.top_features],
        "published": False,
    }


def _plain(document: dict[str, Any]) -> dict[str, Json]:
    return {k: v for k, v in document.items() if not k.startswith("_")}


def _event(document: dict[str, Any]) -> OutgoingEvent:
    body = {
        "specversion": "1.0",
        "id": document["id"],
        "type": ALERT_EVENT_TYPE,
        "source": f"/models/{document['type']}",
        "subject": document["entity"],
        "time": document["raised_at"],
        "datacontenttype": "application/json",
        "data": {k: v for k, v in _plain(document).items() if k != "published"},
    }
    return OutgoingEvent(json.dumps(body).encode(), partition_key=str(document["entity"])[:128])
