"""The devhost's request limits come from settings, and refuse values that are not positive."""

from __future__ import annotations

import pytest

from devhost.appsettings import AppSettings
from devhost.http.limits import (
    BODY_SIZE_LIMIT_SETTING,
    BODY_TIMEOUT_SETTING,
    HEADERS_TIMEOUT_SETTING,
    HttpLimits,
    HttpLimitsError,
)

pytestmark = pytest.mark.unit


def test_the_defaults_are_azures() -> None:
    limits = HttpLimits.from_settings(AppSettings({}, environ={}))
    assert limits == HttpLimits(104_857_600, 30.0, 30.0)


def test_settings_set_the_limits() -> None:
    settings = {BODY_SIZE_LIMIT_SETTING: "2048", HEADERS_TIMEOUT_SETTING: "1.5"}
    limits = HttpLimits.from_settings(AppSettings(settings, environ={BODY_TIMEOUT_SETTING: "4"}))
    assert limits == HttpLimits(2048, 1.5, 4.0)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
@pytest.mark.parametrize(
    "name", [BODY_SIZE_LIMIT_SETTING, HEADERS_TIMEOUT_SETTING, BODY_TIMEOUT_SETTING]
)
def test_a_value_that_is_not_positive_stops_the_host(name: str, value: str) -> None:
    with pytest.raises(HttpLimitsError, match=name):
        HttpLimits.from_settings(AppSettings({name: value}, environ={}))
