"""Every log record of the process is scrubbed of card numbers as it is made."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shared.events.pseudonymize import Pseudonymizer
from shared.privacy.log_scrub import install_log_scrubber, remove_log_scrubber

pytestmark = pytest.mark.unit

P = Pseudonymizer(b"k" * 32)
PAN = "4920777766665550"


@pytest.fixture
def scrubbed() -> Iterator[None]:
    install_log_scrubber(P.scrub_text)
    yield
    remove_log_scrubber()


def test_messages_arguments_tracebacks_and_bad_formats_are_scrubbed(
    scrubbed: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("devhost.anything")  # not only the platform's own loggers
    with caplog.at_level(logging.INFO):
        log.info("landed file landing/%s.csv", "4920 7777 6666 5550")
        log.info({"blob": PAN})
        try:
            raise ValueError(f"cannot build the row of card {PAN}")
        except ValueError:
            log.exception("failed")
        log.warning("two %s %s", PAN)  # does not fit its arguments
        log.info("stack", stack_info=True, extra={"note": "x"})
    text = caplog.text + "".join(str(r.msg) for r in caplog.records)
    assert PAN not in text.replace(" ", "")
    assert "pseudonym:" + P.pseudonym(PAN) in caplog.records[0].getMessage()
    assert "ValueError" in caplog.text


def test_without_the_scrubber_records_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    remove_log_scrubber()  # a platform built by an earlier test installed it
    with caplog.at_level(logging.INFO):
        logging.getLogger("x").info("card %s", PAN)
    assert PAN in caplog.text
