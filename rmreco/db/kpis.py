"""This module owns what sales management reads from the database: the KPIs of relationship
managers over a period (the pipeline of recommendations, offers and outcomes, new business,
retention) and the feedback history those figures are counted from.

Every function takes a session, never commits and returns plain dataclasses. The queries are
SQLAlchemy ``select()`` with portable SQL only (``DISTINCT`` subqueries, ``CASE``, ``EXISTS``
and ``ROW_NUMBER`` / ``MAX`` window functions), so they run alike on SQLite and PostgreSQL, and
every KPI is computed for a set of RMs in one statement, grouped by RM.

The counting rules (``docs/kpis.md`` says them for the users):

- **Periods** are calendar days, first and last included; timestamps count from the first day's
  midnight UTC to the midnight after the last day. The data's months are month starts: a month
  belongs to a period when its first day does (so back-to-back periods never count a month
  twice), and the client base is read at the month holding the period's first day and the month
  holding its last day.
- **Recommendations** are (client, product) pairs recommended to the RM's clients in the period,
  each counted once however many times a page or answer showed it.
- **Outcomes.** A recommendation's outcome is its latest feedback (a final outcome cannot
  change, so it is the final one once there is one). The pipeline counts (client, product)
  pairs, each once, by the best outcome any of its recommendations reached in the period:
  accepted, else the latest of declined and not interested, else offered. A pair was offered
  when one of its recommendations was reported offered, accepted or declined. Its new business
  is the amount of its first acceptance in the period: a repeated "accepted" (on the same row,
  or on another reading of the same list) is never counted twice and never changes the
  amount.
- **Retention**: the RM's clients banking with us at the start (an open holding spell or an
  account month in the start month) who still are in the end month. Unknown (``None``, with a
  note) when the data does not cover both months.
- **New holdings**: holding spells of the RM's clients starting in the period's months, by
  product, with their amounts where the data gives one.

Clients belong to the RM that ``clients.rm_id`` names now: the contract keeps no history of
reassignments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from rmreco.db import schema

#: Outcomes that close a recommendation.
FINAL_OUTCOMES: tuple[str, ...] = schema.FINAL_OUTCOMES
#: Outcomes that say an offer was made.
OFFER_OUTCOMES: tuple[str, ...] = ("offered", "accepted", "declined")

_F = schema.Feedback
_R = schema.Recommendation
_C = schema.Client
_H = schema.Holding
_A = schema.AccountMonth
_U = schema.User


# --- periods ---------------------------------------------------------------------------------


def month_start(day: date) -> date:
    """The first day of the month holding ``day``."""
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """Calendar days ``first_day`` .. ``last_day``, both included."""

    first_day: date
    last_day: date

    @property
    def starts_at(self) -> datetime:
        """The first instant of the period (midnight UTC of its first day)."""
        return datetime.combine(self.first_day, time.min, tzinfo=UTC)

    @property
    def ends_before(self) -> datetime:
        """The first instant after the period (midnight UTC after its last day)."""
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def start_month(self) -> date:
        """The data month in which the period starts (where the client base is read)."""
        return month_start(self.first_day)

    @property
    def end_month(self) -> date:
        """The data month in which the period ends (where retention is read)."""
        return month_start(self.last_day)

    @property
    def months(self) -> tuple[date, date] | None:
        """First and last data month whose first day lies in the period (None: no month
        starts in it, e.g. the 10th to the 20th of one month)."""
        first = self.start_month if self.first_day.day == 1 else _next_month(self.start_month)
        last = self.end_month
        return (first, last) if first <= last else None


# --- what the data covers --------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpan:
    """The months the loaded data covers, and the table that says so."""

    first_month: date | None
    last_month: date | None
    #: "account_months", "holdings", or None when neither table holds a row
    source: str | None

    def covers(self, month: date) -> bool:
        return (
            self.first_month is not None
            and self.last_month is not None
            and self.first_month <= month <= self.last_month
        )


def data_span(session: Session) -> DataSpan:
    """The months the loaded data covers: those of the account history; a book without account
    months (an optional table) falls back to the months holdings start and end in."""
    first, last = session.execute(select(func.min(_A.month), func.max(_A.month))).one()
    if first is not None:
        return DataSpan(first, last, "account_months")
    first, last = session.execute(
        select(func.min(_H.start_month), func.max(func.coalesce(_H.end_month, _H.start_month)))
    ).one()
    return DataSpan(first, last, "holdings" if first is not None else None)


# --- the pipeline: recommendations, offers, outcomes ----------------------------------------


@dataclass(frozen=True)
class ProductPipeline:
    """One product's pipeline: (client, product) pairs, each counted once."""

    product_code: str
    recommended: int = 0
    offered: int = 0
    accepted: int = 0
    declined: int = 0
    not_interested: int = 0
    #: sum of the accepted pairs' amounts (each pair's first acceptance)
    accepted_amount: float = 0.0
    #: accepted pairs whose acceptance carries no amount
    accepted_without_amount: int = 0

    def __add__(self, other: ProductPipeline) -> ProductPipeline:
        return ProductPipeline(
            product_code=self.product_code,
            recommended=self.recommended + other.recommended,
            offered=self.offered + other.offered,
            accepted=self.accepted + other.accepted,
            declined=self.declined + other.declined,
            not_interested=self.not_interested + other.not_interested,
            accepted_amount=self.accepted_amount + other.accepted_amount,
            accepted_without_amount=self.accepted_without_amount + other.accepted_without_amount,
        )


def _rm_clause(rm_ids: Sequence[str]) -> ColumnElement[bool]:
    return _C.rm_id == rm_ids[0] if len(rm_ids) == 1 else _C.rm_id.in_(list(rm_ids))


def _recommended(
    session: Session, period: Period, rm_ids: Sequence[str]
) -> dict[tuple[str, str], int]:
    """Distinct (client, product) pairs recommended in the period, by (RM, product)."""
    pairs = (
        select(_C.rm_id, _R.client_id, _R.product_code)
        .join(_C, _C.client_id == _R.client_id)
        .where(
            _rm_clause(rm_ids),
            _R.product_code.is_not(None),
            _R.created_at >= period.starts_at,
            _R.created_at < period.ends_before,
        )
        .distinct()
        .subquery()
    )
    rows = session.execute(
        select(pairs.c.rm_id, pairs.c.product_code, func.count()).group_by(
            pairs.c.rm_id, pairs.c.product_code
        )
    ).all()
    return {(str(rm), str(product)): int(n) for rm, product, n in rows}


def _outcomes(
    session: Session, period: Period, rm_ids: Sequence[str]
) -> list[tuple[str, str, str, bool, int, float | None, int]]:
    """(RM, product, pair outcome, was offered, pairs, sum of amounts, amounts given) of the
    feedback given in the period, one outcome per (client, product) pair."""
    pair = (_F.client_id, _F.product_code)
    # accepted first; then the closing outcomes; an "offered" only when nothing closed the pair
    rank = case((_F.outcome == "accepted", 3), (_F.outcome.in_(FINAL_OUTCOMES), 2), else_=1)
    is_accepted = _F.outcome == "accepted"
    # among acceptances the first one recorded (a repeat never changes the amount); among the
    # other outcomes the latest. Within one rank every row is accepted or none is, so the
    # acceptance keys are all set or all null there, whatever the database's null order.
    order = (
        rank.desc(),
        case((is_accepted, _F.created_at)).asc(),
        case((is_accepted, _F.id)).asc(),
        _F.created_at.desc(),
        _F.id.desc(),
    )
    ranked = (
        select(
            _C.rm_id,
            _F.product_code,
            _F.outcome,
            _F.amount,
            func.row_number().over(partition_by=pair, order_by=order).label("position"),
            func.max(case((_F.outcome.in_(OFFER_OUTCOMES), 1), else_=0))
            .over(partition_by=pair)
            .label("was_offered"),
        )
        .join(_C, _C.client_id == _F.client_id)
        .where(
            _rm_clause(rm_ids),
            _F.created_at >= period.starts_at,
            _F.created_at < period.ends_before,
        )
        .subquery()
    )
    keys = (ranked.c.rm_id, ranked.c.product_code, ranked.c.outcome, ranked.c.was_offered)
    rows = session.execute(
        select(*keys, func.count(), func.sum(ranked.c.amount), func.count(ranked.c.amount))
        .where(ranked.c.position == 1)
        .group_by(*keys)
    ).all()
    return [
        (str(rm), str(p), str(o), bool(offered), int(n), None if s is None else float(s), int(k))
        for rm, p, o, offered, n, s, k in rows
    ]


def pipelines(
    session: Session, period: Period, rm_ids: Sequence[str]
) -> dict[str, list[ProductPipeline]]:
    """Each RM's pipeline in the period, by product (in product order); an RM with nothing
    recommended and no feedback has an empty list."""
    if not rm_ids:
        return {}
    out: dict[str, dict[str, ProductPipeline]] = {rm: {} for rm in rm_ids}
    for (rm, product), n in _recommended(session, period, rm_ids).items():
        by_product = out.setdefault(rm, {})
        by_product[product] = by_product.get(product, ProductPipeline(product)) + ProductPipeline(
            product, recommended=n
        )
    for rm, product, outcome, was_offered, n, amount, with_amount in _outcomes(
        session, period, rm_ids
    ):
        accepted = outcome == "accepted"
        counted = ProductPipeline(
            product,
            offered=n if was_offered else 0,
            accepted=n if accepted else 0,
            declined=n if outcome == "declined" else 0,
            not_interested=n if outcome == "not_interested" else 0,
            accepted_amount=_finite(amount) if accepted else 0.0,
            accepted_without_amount=n - with_amount if accepted else 0,
        )
        by_product = out.setdefault(rm, {})
        by_product[product] = by_product.get(product, ProductPipeline(product)) + counted
    return {rm: [by_product[p] for p in sorted(by_product)] for rm, by_product in out.items()}


def _finite(value: float | None) -> float:
    return 0.0 if value is None or not math.isfinite(value) else value


def combined(pipelines_of: Iterable[Sequence[ProductPipeline]]) -> list[ProductPipeline]:
    """Several RMs' pipelines added up by product (a team's)."""
    total: dict[str, ProductPipeline] = {}
    for pipeline in pipelines_of:
        for row in pipeline:
            total[row.product_code] = total.get(row.product_code, ProductPipeline(row.product_code))
            total[row.product_code] = total[row.product_code] + row
    return [total[p] for p in sorted(total)]


# --- retention -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    """Clients banking with us in ``start_month`` and how many of them still are in
    ``end_month``; the counts are None (and ``note`` says why) when the data does not tell."""

    start_month: date
    end_month: date
    clients_at_start: int | None
    retained: int | None
    note: str | None = None

    @property
    def rate(self) -> float | None:
        if self.clients_at_start is None or self.retained is None or not self.clients_at_start:
            return None
        return self.retained / self.clients_at_start


def _banking_in(month: date) -> ColumnElement[bool]:
    """Whether the client (of the outer query) banks with us in ``month``: a holding spell open
    in it, or an account month for it."""
    held = exists().where(
        _H.client_id == _C.client_id,
        _H.start_month <= month,
        or_(_H.end_month.is_(None), _H.end_month >= month),
    )
    account = exists().where(_A.client_id == _C.client_id, _A.month == month)
    return or_(held, account)


def _span_note(span: DataSpan, period: Period) -> str | None:
    """Why the data cannot tell retention over the period (None: it can)."""
    if span.first_month is None or span.last_month is None:
        return "the data holds no account months and no holdings"
    basis = (
        "latest account month"
        if span.source == "account_months"
        else "latest month a holding starts or ends in; the data has no account months"
    )
    if period.end_month > span.last_month:
        return (
            f"the data ends with {span.last_month:%Y-%m} ({basis}); the period ends in "
            f"{period.end_month:%Y-%m}: ask for a period ending by "
            f"{_next_month(span.last_month) - timedelta(days=1)}"
        )
    if period.start_month < span.first_month:
        return (
            f"the data starts with {span.first_month:%Y-%m}; the period starts in "
            f"{period.start_month:%Y-%m}, before it: who banked with us then is not known"
        )
    return None


def retention(
    session: Session, period: Period, rm_ids: Sequence[str], span: DataSpan | None = None
) -> dict[str, Retention]:
    """Each RM's retention over the period (``span``: what the data covers, read when not
    given)."""
    span = span if span is not None else data_span(session)
    note = _span_note(span, period)
    if note is not None or not rm_ids:
        return {
            rm: Retention(period.start_month, period.end_month, None, None, note) for rm in rm_ids
        }
    at_start = _banking_in(period.start_month)
    at_end = _banking_in(period.end_month)
    rows = session.execute(
        select(
            _C.rm_id,
            func.sum(case((at_start, 1), else_=0)),
            func.sum(case((and_(at_start, at_end), 1), else_=0)),
        )
        .where(_rm_clause(rm_ids))
        .group_by(_C.rm_id)
    ).all()
    counts = {str(rm): (int(base or 0), int(kept or 0)) for rm, base, kept in rows}
    out = {}
    for rm in rm_ids:
        base, kept = counts.get(rm, (0, 0))
        empty = None if base else "none of the RM's clients banked with us at the period's start"
        out[rm] = Retention(period.start_month, period.end_month, base, kept, empty)
    return out


def combined_retention(period: Period, parts: Iterable[Retention]) -> Retention:
    """Several RMs' retention as one (a team's): unknown when any part is."""
    parts = list(parts)
    unknown = next((p for p in parts if p.clients_at_start is None), None)
    if unknown is not None:
        return Retention(period.start_month, period.end_month, None, None, unknown.note)
    base = sum(p.clients_at_start or 0 for p in parts)
    kept = sum(p.retained or 0 for p in parts)
    empty = None if base else "none of these clients banked with us at the period's start"
    return Retention(period.start_month, period.end_month, base, kept, empty)


# --- new holdings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductHoldings:
    """Holding spells of one product started in the period."""

    product_code: str
    started: int
    #: spells whose amount the data gives, and the sum of those amounts
    with_amount: int = 0
    amount: float = 0.0

    def __add__(self, other: ProductHoldings) -> ProductHoldings:
        return ProductHoldings(
            self.product_code,
            self.started + other.started,
            self.with_amount + other.with_amount,
            self.amount + other.amount,
        )


@dataclass(frozen=True)
class NewHoldings:
    """Holdings started in the months ``first_month`` .. ``last_month`` (None: no data month
    lies in the period, and ``note`` says so)."""

    first_month: date | None
    last_month: date | None
    by_product: list[ProductHoldings] = field(default_factory=list)
    note: str | None = None

    @property
    def started(self) -> int | None:
        return None if self.first_month is None else sum(p.started for p in self.by_product)


def _holding_months(period: Period, span: DataSpan) -> tuple[date | None, date | None, str | None]:
    months = period.months
    if months is None:
        return None, None, "no month starts in the period: holdings are known by month"
    first, last = months
    if span.last_month is None:
        return None, None, "the data holds no account months and no holdings"
    if first > span.last_month:
        return None, None, f"the data ends with {span.last_month:%Y-%m}, before the period"
    if last > span.last_month:
        return first, span.last_month, f"counted to {span.last_month:%Y-%m}, where the data ends"
    return first, last, None


def new_holdings(
    session: Session, period: Period, rm_ids: Sequence[str], span: DataSpan | None = None
) -> dict[str, NewHoldings]:
    """Holding spells of each RM's clients that started in the period's months, by product."""
    span = span if span is not None else data_span(session)
    first, last, note = _holding_months(period, span)
    if first is None or last is None or not rm_ids:
        return {rm: NewHoldings(None, None, [], note) for rm in rm_ids}
    rows = session.execute(
        select(_C.rm_id, _H.product_code, func.count(), func.count(_H.amount), func.sum(_H.amount))
        .join(_C, _C.client_id == _H.client_id)
        .where(_rm_clause(rm_ids), _H.start_month >= first, _H.start_month <= last)
        .group_by(_C.rm_id, _H.product_code)
        .order_by(_C.rm_id, _H.product_code)
    ).all()
    found: dict[str, list[ProductHoldings]] = {rm: [] for rm in rm_ids}
    for rm, product, n, with_amount, total in rows:
        found[str(rm)].append(
            ProductHoldings(str(product), int(n), int(with_amount), _finite(total))
        )
    return {rm: NewHoldings(first, last, found[rm], note) for rm in rm_ids}


def combined_holdings(parts: Iterable[NewHoldings]) -> NewHoldings:
    """Several RMs' new holdings as one (a team's); the parts share the period's months."""
    parts = list(parts)
    if not parts:
        return NewHoldings(None, None, [], None)
    total: dict[str, ProductHoldings] = {}
    for part in parts:
        for row in part.by_product:
            total[row.product_code] = (
                total.get(row.product_code, ProductHoldings(row.product_code, 0)) + row
            )
    head = parts[0]
    return NewHoldings(
        head.first_month, head.last_month, [total[p] for p in sorted(total)], head.note
    )


# --- everything for a set of RMs -------------------------------------------------------------


@dataclass(frozen=True)
class RmKpis:
    """One RM's KPIs over a period (``rm_id`` None: several RMs added up)."""

    rm_id: str | None
    pipeline: list[ProductPipeline]
    retention: Retention
    new_holdings: NewHoldings

    @property
    def total(self) -> ProductPipeline:
        """The pipeline over every product."""
        out = ProductPipeline("")
        for row in self.pipeline:
            out = out + row
        return out


def rm_kpis(session: Session, period: Period, rm_ids: Sequence[str]) -> dict[str, RmKpis]:
    """Every KPI of each of ``rm_ids`` over the period, in ``rm_ids``' order."""
    span = data_span(session)
    flows = pipelines(session, period, rm_ids)
    kept = retention(session, period, rm_ids, span)
    started = new_holdings(session, period, rm_ids, span)
    return {rm: RmKpis(rm, flows.get(rm, []), kept[rm], started[rm]) for rm in rm_ids}


def team_total(period: Period, kpis: Sequence[RmKpis]) -> RmKpis:
    """The KPIs of several RMs added up (pairs are per client, and a client has one RM, so
    adding counts nothing twice)."""
    return RmKpis(
        None,
        combined(k.pipeline for k in kpis),
        combined_retention(period, (k.retention for k in kpis)),
        combined_holdings(k.new_holdings for k in kpis),
    )


@dataclass(frozen=True)
class RmInfo:
    rm_id: str
    name: str
    role: str
    team: str | None


def relationship_managers(session: Session, team: str | None = None) -> list[RmInfo]:
    """The relationship managers (of one team), by id."""
    query = select(
        schema.RelationshipManager.rm_id,
        schema.RelationshipManager.name,
        schema.RelationshipManager.role,
        schema.RelationshipManager.team,
    ).order_by(schema.RelationshipManager.rm_id)
    if team is not None:
        query = query.where(schema.RelationshipManager.team == team)
    return [RmInfo(*row) for row in session.execute(query).all()]


# --- the feedback history --------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackEntry:
    """One feedback report, with who gave it."""

    feedback_id: int
    recommendation_id: str
    kind: str
    client_id: str
    product_code: str
    outcome: str
    reason: str | None
    amount: float | None
    created_at: datetime
    user_name: str


@dataclass(frozen=True)
class FeedbackHistory:
    """A page of feedback, newest first, and how many reports there are in all."""

    total: int
    entries: list[FeedbackEntry]


def _aware(value: datetime) -> datetime:
    # SQLite keeps no zone: its timestamps are UTC (schema's module doc)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def feedback_history(
    session: Session,
    *,
    client_id: str | None = None,
    rm_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> FeedbackHistory:
    """Feedback on one client's recommendations, or on those of an RM's clients, newest first
    (reports given at the same instant: the later recorded first).

    Raises:
        ValueError: neither or both of ``client_id`` and ``rm_id`` are given.
    """
    if (client_id is None) == (rm_id is None):
        raise ValueError("feedback_history needs exactly one of client_id and rm_id")
    where: list[ColumnElement[bool]]
    if client_id is not None:
        where = [_F.client_id == client_id]
    else:
        where = [_F.client_id.in_(select(_C.client_id).where(_C.rm_id == rm_id))]
    total = session.scalar(select(func.count()).select_from(_F).where(*where)) or 0
    rows = session.execute(
        select(
            _F.id,
            _F.recommendation_id,
            _R.kind,
            _F.client_id,
            _F.product_code,
            _F.outcome,
            _F.reason,
            _F.amount,
            _F.created_at,
            _U.name,
        )
        .join(_R, _R.id == _F.recommendation_id)
        .join(_U, _U.id == _F.user_id)
        .where(*where)
        .order_by(_F.created_at.desc(), _F.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    entries = [_entry(row) for row in rows]
    return FeedbackHistory(int(total), entries)


def _entry(row: Any) -> FeedbackEntry:
    amount = row[7]
    return FeedbackEntry(
        feedback_id=int(row[0]),
        recommendation_id=str(row[1]),
        kind=str(row[2]),
        client_id=str(row[3]),
        product_code=str(row[4]),
        outcome=str(row[5]),
        reason=row[6],
        amount=None if amount is None or not math.isfinite(amount) else float(amount),
        created_at=_aware(row[8]),
        user_name=str(row[9]),
    )
