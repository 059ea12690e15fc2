"""Interaction features per user: what recommendations start from.

- `recent_items`: the items the user touched before this event, most recent first, each
  once (at most `RECENT_ITEMS`);
- `session_events`: events in this session so far, this one included; `sessions_24h`: the
  sessions the user had in the last 24 hours, this one included;
- `events_1h`, `purchases_24h`: the user's events in the last hour, purchases in the last day,
  this event included.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.features.base import Row

RECENT_ITEMS = 20
HORIZON_S = 86_400.0
MAX_EVENTS = 2_000  # a user's events kept for the windows, however busy (a bot) it is
MAX_PURCHASED = 200  # the items a user bought, which recommendations leave out


class UserState(msgspec.Struct):
    """A user's items and purchases (most recent first), its last day's events (time, session,
    purchase), and the session it is in with its events so far."""

    items: list[str] = msgspec.field(default_factory=list)
    purchased: list[str] = msgspec.field(default_factory=list)  # most recent first
    events: list[tuple[float, str, bool]] = msgspec.field(default_factory=list)
    session: str = ""
    session_events: int = 0
    last_t: float = -1.0


class InteractionFeatures:
    name = "interactions"
    event_type = "app.interaction"
    entity = "user_id"
    numeric: tuple[str, ...] = ("session_events", "sessions_24h", "events_1h", "purchases_24h")
    categorical: frozenset[str] = frozenset()
    state_type = UserState

    def new_state(self) -> UserState:
        return UserState()

    def features(self, state: UserState, row: Row) -> dict[str, Any]:
        t, session = float(row["t"]), row["session_id"]
        day = [e for e in state.events if t - HORIZON_S < e[0] <= t]
        return {
            "recent_items": tuple(state.items),
            "session_events": float(state.session_events + 1 if session == state.session else 1),
            "sessions_24h": float(len({e[1] for e in day} | {session})),
            "events_1h": float(sum(1 for e in day if e[0] > t - 3600.0) + 1),
            "purchases_24h": float(sum(1 for e in day if e[2]) + (row["action"] == "purchase")),
        }

    def apply(self, state: UserState, row: Row) -> None:
        t, session, item = float(row["t"]), row["session_id"], row["item_id"]
        newest = max(t, state.last_t)
        state.items = [item, *(i for i in state.items if i != item)][:RECENT_ITEMS]
        if row["action"] == "purchase":
            others = (i for i in state.purchased if i != item)
            state.purchased = [item, *others][:MAX_PURCHASED]
        kept = [e for e in state.events if e[0] > newest - HORIZON_S]
        kept.append((t, session, row["action"] == "purchase"))
        state.events = kept[-MAX_EVENTS:]
        state.session_events = state.session_events + 1 if session == state.session else 1
        state.session = session
        state.last_t = newest
