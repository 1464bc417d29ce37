"""This module owns the contact policy: when a product may be put to a client again. A client
who declined a product (or said it is not wanted) is not offered it again within the cool-off
window, and no product is put to the same client more often than the contact limit allows. The
financing answer and the cross-sell lists read the same rules (the ``contact`` section of the
policy file): a suppressed product is left out of lists and marked, with the day it may be
offered again, in a financing answer.

The events are the RMs' feedback (an RM reports an offer as offered, accepted, declined or not
interested); one recommendation reported several times is one contact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import Field

from rmreco.modeling.spec import Frozen

#: Feedback outcomes that start the cool-off: the client said no.
REFUSALS = frozenset({"declined", "not_interested"})


class ContactPolicy(Frozen):
    """The ``contact`` section of the policy file."""

    #: days after a client declined a product (or said it is not wanted) before it is offered
    #: again
    cool_off_days: int = Field(ge=0)
    #: at most this many contacts about one product with one client within ``window_days``
    max_contacts: int = Field(ge=1)
    window_days: int = Field(ge=1)

    def lookback(self, now: datetime) -> datetime:
        """The earliest feedback that can still suppress a product at ``now``."""
        return now - timedelta(days=max(self.cool_off_days, self.window_days))


class ContactEvent(Protocol):
    """One feedback report on an offer of a product to a client (the repository's
    ``FeedbackEvent``)."""

    @property
    def client_id(self) -> str: ...
    @property
    def product_code(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def recommendation_id(self) -> str: ...


@dataclass(frozen=True)
class Suppression:
    """Why a product is not offered to a client now, and from when it may be again."""

    until: datetime
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"until": self.until.date().isoformat(), "reasons": list(self.reasons)}

    @property
    def note(self) -> str:
        return f"not to be offered before {self.until.date().isoformat()}: " + "; ".join(
            self.reasons
        )


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes of what was written in UTC
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def suppressions(
    events: Iterable[ContactEvent], policy: ContactPolicy, now: datetime
) -> dict[tuple[str, str], Suppression]:
    """The (client, product) pairs the contact policy keeps out at ``now``.

    A refusal at time t suppresses the pair until t + ``cool_off_days``. When the pair's
    contacts (distinct recommendations reported on) in the last ``window_days`` reach
    ``max_contacts``, the pair is suppressed until enough of them leave the window. When both
    hold, the later day wins and both reasons are given.
    """
    now = _utc(now)
    by_pair: dict[tuple[str, str], list[ContactEvent]] = {}
    for event in events:
        by_pair.setdefault((event.client_id, event.product_code), []).append(event)
    out: dict[tuple[str, str], Suppression] = {}
    window = timedelta(days=policy.window_days)
    for pair, pair_events in by_pair.items():
        candidates: list[tuple[datetime, str]] = []
        refusals = [_utc(e.at) for e in pair_events if e.outcome in REFUSALS]
        if refusals:
            last = max(refusals)
            until = last + timedelta(days=policy.cool_off_days)
            if until > now:
                candidates.append(
                    (
                        until,
                        f"the client declined it on {last.date().isoformat()} "
                        f"({policy.cool_off_days}-day cool-off)",
                    )
                )
        first_report: dict[str, datetime] = {}
        for event in pair_events:
            at = _utc(event.at)
            if now - window < at <= now:
                seen = first_report.get(event.recommendation_id)
                first_report[event.recommendation_id] = at if seen is None else min(seen, at)
        contacts = sorted(first_report.values(), reverse=True)
        if len(contacts) >= policy.max_contacts:
            # the pair is free again once the oldest of the latest max_contacts leaves the window
            until = contacts[policy.max_contacts - 1] + window
            candidates.append(
                (
                    until,
                    f"offered {len(contacts)} times in the last {policy.window_days} days "
                    f"(the limit is {policy.max_contacts})",
                )
            )
        if candidates:
            out[pair] = Suppression(
                until=max(u for u, _ in candidates), reasons=tuple(r for _, r in candidates)
            )
    return out
