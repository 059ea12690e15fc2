"""What a blob trigger says about a landing file: path, event type, version, arrival, account."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from shared.landing.file import NotALandingFile, landing_file, namespace_of

pytestmark = pytest.mark.unit

STREAM = io.BytesIO(b"")


def test_the_trigger_metadata_names_the_file_its_type_and_version() -> None:
    file = landing_file(
        "landing/payment.transaction/2024/05/day1.CSV",
        "https://acct.blob.core.windows.net/landing/payment.transaction/2024/05/day1.CSV",
        {"ETag": '"0x8DC2F5E0F1"', "LastModified": "2024-05-01T10:00:00+02:00"},
        STREAM,
    )
    assert file.container == "landing"
    assert file.event_type == "payment.transaction"
    assert file.suffix == ".csv"
    assert file.version == "0x8DC2F5E0F1"
    assert file.modified == dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
    assert file.namespace == "acct"
    assert file.app_id == "landing:acct/landing/payment.transaction/2024/05/day1.CSV@0x8DC2F5E0F1"


def test_a_file_directly_in_the_container_has_no_event_type() -> None:
    file = landing_file("landing/day1.csv", None, {"ETag": "1"}, STREAM)
    assert file.event_type is None
    assert landing_file("landing//x.csv", None, {"ETag": "1"}, STREAM).event_type is None


@pytest.mark.parametrize(
    ("modified", "expected"),
    [
        ("Wed, 01 May 2024 10:00:00 GMT", dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
        ("2024-05-01T10:00:00", dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
        ("2024-05-01T10:00:00Z", dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
        ("yesterday", None),
        (None, None),
    ],
)
def test_last_modified_is_read_as_utc(modified: str | None, expected: dt.datetime | None) -> None:
    file = landing_file("landing/t/x.csv", None, {"ETag": "1", "LastModified": modified}, STREAM)
    assert file.modified == expected


def test_without_an_etag_the_version_is_the_time_and_length() -> None:
    properties = {"LastModified": "2024-05-01T10:00:00Z", "ContentLength": 42}
    file = landing_file("landing/t/x.csv", None, properties, STREAM)
    assert file.version == "2024-05-01T10:00:00+00:00/42"
    assert landing_file("landing/t/x.csv", None, {"ETag": 'W/"abc"'}, STREAM).version == "abc"


@pytest.mark.parametrize(
    ("name", "properties"),
    [
        (None, {"ETag": "1"}),
        ("", {"ETag": "1"}),
        ("just-a-name.csv", {"ETag": "1"}),
        ("landing/t/x.csv", {}),
        ("landing/t/x.csv", None),
        ("landing/t/x.csv", {"ETag": '""', "LastModified": "not a time"}),
    ],
)
def test_no_name_or_no_version_is_refused(name: str | None, properties: dict | None) -> None:
    with pytest.raises(NotALandingFile):
        landing_file(name, None, properties, STREAM)


@pytest.mark.parametrize(
    ("uri", "namespace"),
    [
        ("https://MyAccount.blob.core.windows.net/landing/t/x.csv", "myaccount"),
        ("http://127.0.0.1:10000/devstoreaccount1/landing/t/x.csv", "devstoreaccount1"),
        ("http://localhost:10000/devstoreaccount1/landing/t/x.csv", "devstoreaccount1"),
        ("file:///data/blobs/landing/t/x.csv", "local"),
        ("", "local"),
        (None, "local"),
    ],
)
def test_the_namespace_is_the_storage_account(uri: str | None, namespace: str) -> None:
    assert namespace_of(uri) == namespace
