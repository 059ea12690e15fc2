"""The event services of a process, wired from settings: intake, publisher, ingestor, landing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.config import Adapter, Settings
from shared.events.envelope import EventDecoder
from shared.events.eventhubs import EventHubsProbe, EventHubsPublisher
from shared.events.ingest import GroupScorer, Ingestor
from shared.events.intake import EventIntake
from shared.events.protection import EventProtector
from shared.events.pseudonymize import Pseudonymizer
from shared.events.publisher import EventPublisher, LocalEventPublisher, LocalEventsProbe
from shared.health import ReadinessProbe
from shared.lakehouse.access import LakeAccess
from shared.lakehouse.bronze import BronzeWriter
from shared.landing.service import FileLanding


@dataclass(frozen=True)
class EventServices:
    intake: EventIntake
    ingestor: Ingestor
    landing: FileLanding
    publisher: EventPublisher
    probe: ReadinessProbe


def build_event_services(
    settings: Settings,
    access: LakeAccess,
    pseudonymizer: Pseudonymizer,
    environ: Mapping[str, str],
    scorer: Callable[[], GroupScorer | None] | None = None,
) -> EventServices:
    """Choose the publisher by settings and wire the decoder, pseudonymizer and bronze writer."""
    decoder = EventDecoder()
    publisher: EventPublisher
    probe: ReadinessProbe
    events = settings.events
    if events.adapter is Adapter.AZURE and events.fully_qualified_namespace is not None:
        publisher = EventHubsPublisher.with_default_credential(events.fully_qualified_namespace)
        probe = EventHubsProbe(events.fully_qualified_namespace)
    else:
        log_dir = events.local_log_dir or settings.data_dir
        local = LocalEventPublisher.for_settings(log_dir, environ, events.connection)
        publisher, probe = local, LocalEventsProbe(local)
    writer = BronzeWriter(
        settings.lake.uri, access, direct_log=settings.lake.adapter is Adapter.LOCAL
    )
    return EventServices(
        intake=EventIntake(decoder, publisher, EventProtector(decoder, pseudonymizer)),
        ingestor=Ingestor(decoder, pseudonymizer, writer, scorer=scorer),
        landing=FileLanding(decoder.registry, pseudonymizer, writer),
        publisher=publisher,
        probe=probe,
    )
