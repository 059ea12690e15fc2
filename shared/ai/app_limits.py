"""An app's limits on the AI gateway, validated: admins set them over HTTP, so every value from
outside is checked for type and range before it reaches the limiter.

- `tokens_per_minute` and `requests_per_minute`: the rate, over any 60 seconds.
- `token_quota` per `quota_period` (`day` or `month`, UTC): the volume.
- `max_tokens_cap`: the most completion tokens one request may ask for (and reserve); a request
  asking more is capped, one asking nothing gets the cap.

The bounds keep every counter exact where Cosmos DB keeps numbers as doubles (below 2**53), and
a request that fits the cap always fits the minute and the quota, so no request is refused
forever by a limit it could never meet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

QuotaPeriod = Literal["day", "month"]
QUOTA_PERIODS: tuple[str, ...] = get_args(QuotaPeriod)
BOUNDS: dict[str, tuple[int, int]] = {
    "tokens_per_minute": (1, 1_000_000_000),
    "requests_per_minute": (1, 1_000_000),
    "token_quota": (1, 1_000_000_000_000),
    "max_tokens_cap": (1, 1_000_000),
}
DEFAULT_MAX_TOKENS_CAP = 4096


class InvalidLimits(ValueError):
    """Limits refused; the message names the field and the rule, safe to show an admin."""


@dataclass(frozen=True)
class AppLimits:
    """What one app may use; constructing it validates it (InvalidLimits)."""

    tokens_per_minute: int
    requests_per_minute: int
    token_quota: int
    quota_period: QuotaPeriod = "month"
    max_tokens_cap: int = DEFAULT_MAX_TOKENS_CAP

    def __post_init__(self) -> None:
        for name, (low, high) in BOUNDS.items():
            _check_integer(name, getattr(self, name), low, high)
        if not isinstance(self.quota_period, str) or self.quota_period not in QUOTA_PERIODS:
            raise InvalidLimits(
                f"quota_period must be one of {', '.join(QUOTA_PERIODS)}, "
                f"not {_shown(self.quota_period)}"
            )
        for bound in ("tokens_per_minute", "token_quota"):
            if self.max_tokens_cap > getattr(self, bound):
                raise InvalidLimits(
                    f"max_tokens_cap ({self.max_tokens_cap}) cannot exceed {bound} "
                    f"({getattr(self, bound)}): a request reserving it could never be admitted"
                )

    @classmethod
    def from_json(cls, value: Any) -> AppLimits:
        """Limits from a JSON object: the three limits required, the period and cap optional,
        nothing else."""
        if not isinstance(value, Mapping):
            raise InvalidLimits("limits must be a JSON object")
        _check_keys(value)
        required = ("tokens_per_minute", "requests_per_minute", "token_quota")
        missing = [name for name in required if name not in value]
        if missing:
            raise InvalidLimits(f"limits need {', '.join(missing)}")
        return cls(**{str(k): v for k, v in value.items()})

    def updated(self, changes: Any) -> AppLimits:
        """These limits with some fields changed (a JSON object of any of them)."""
        if not isinstance(changes, Mapping):
            raise InvalidLimits("limits must be a JSON object")
        _check_keys(changes)
        return replace(self, **{str(k): v for k, v in changes.items()})

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_FIELDS = tuple(f.name for f in fields(AppLimits))


def _check_keys(value: Mapping[Any, Any]) -> None:
    unknown = [k for k in value if k not in _FIELDS]
    if unknown:
        names = ", ".join(_shown(k) for k in unknown[:5])
        raise InvalidLimits(f"unknown limit {names}; the limits are {', '.join(_FIELDS)}")


def _check_integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidLimits(f"{name} must be an integer from {low} to {high}, not {_shown(value)}")


def _shown(value: Any) -> str:
    """A value for a message: short, whatever it is (a huge integer is not even printed)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number that large"
    text = repr(value[:41] if isinstance(value, str) else value)
    return text if len(text) <= 40 else text[:37] + "..."
