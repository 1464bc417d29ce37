"""Queries and writes of the service and the user commands. Each function takes a session and
never commits: the request or the CLI command owns the transaction. Plain values and
dataclasses leave this module, never ORM objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from rmreco.db import schema


@dataclass(frozen=True)
class UserRecord:
    id: int
    name: str
    role: str
    rm_id: str | None
    api_key_hash: str
    is_revoked: bool


def _user(row: Any) -> UserRecord:
    """A user from an ORM row or a result row with the same column names."""
    return UserRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        rm_id=row.rm_id,
        api_key_hash=row.api_key_hash,
        is_revoked=row.revoked_at is not None,
    )


# The statements every request runs are built once, on the tables (Core, not ORM entities):
# building a statement and its cache key cost more than running it on the request path.
_users = schema.User.__table__
_clients = schema.Client.__table__
_snapshots = schema.ClientFeatures.__table__
_holdings = schema.Holding.__table__
_INSERT_RECOMMENDATION = insert(cast(Table, schema.Recommendation.__table__))

_USER_BY_PREFIX = select(
    _users.c.id,
    _users.c.name,
    _users.c.role,
    _users.c.rm_id,
    _users.c.api_key_hash,
    _users.c.revoked_at,
).where(_users.c.api_key_prefix == bindparam("prefix"))

# a client with its feature snapshot, in ClientView's field order (rows: client_view)
CLIENT_VIEW = select(
    _clients.c.client_id,
    _clients.c.segment,
    _clients.c.rm_id,
    _clients.c.turnover,
    _snapshots.c.month,
    _snapshots.c.in_default,
    _snapshots.c.features,
    _snapshots.c.offer_candidates,
    _clients.c.name,
)
_CLIENT_WITH_FEATURES = CLIENT_VIEW.outerjoin(
    _snapshots, _snapshots.c.client_id == _clients.c.client_id
).where(_clients.c.client_id == bindparam("client_id"))

_HELD_BY_ONE = select(_holdings.c.client_id, _holdings.c.product_code).where(
    _holdings.c.client_id == bindparam("client_id"), _holdings.c.end_month.is_(None)
)


def user_by_key_prefix(session: Session, prefix: str) -> UserRecord | None:
    row = session.execute(_USER_BY_PREFIX, {"prefix": prefix}).first()
    return _user(row) if row else None


def user_by_name(session: Session, name: str) -> UserRecord | None:
    row = session.scalars(select(schema.User).where(schema.User.name == name)).first()
    return _user(row) if row else None


def add_user(
    session: Session, *, name: str, role: str, rm_id: str | None, key_prefix: str, key_hash: str
) -> int:
    row = schema.User(
        name=name, role=role, rm_id=rm_id, api_key_prefix=key_prefix, api_key_hash=key_hash
    )
    session.add(row)
    session.flush()
    return row.id


def revoke_user(session: Session, name: str, when: datetime) -> bool:
    result = session.execute(
        update(schema.User)
        .where(schema.User.name == name, schema.User.revoked_at.is_(None))
        .values(revoked_at=when)
    )
    return bool(getattr(result, "rowcount", 0))


def rm_exists(session: Session, rm_id: str) -> bool:
    return session.get(schema.RelationshipManager, rm_id) is not None


@dataclass(frozen=True)
class ClientView:
    client_id: str
    segment: str
    rm_id: str | None
    turnover: float | None
    month: date | None
    in_default: bool
    features: dict[str, Any] | None
    offer_candidates: dict[str, Any] | None = None
    #: The client's legal or personal name (``clients.name``); None where the bank gives none,
    #: and then pages show ``client_id``. For people to read, never a feature.
    client_name: str | None = None


def client_with_features(session: Session, client_id: str) -> ClientView | None:
    """The client and its feature snapshot (None when the client does not exist)."""
    row = session.execute(_CLIENT_WITH_FEATURES, {"client_id": client_id}).first()
    return None if row is None else client_view(row)


def client_view(row: Any) -> ClientView:
    """A ClientView from a row of :data:`CLIENT_VIEW`'s columns."""
    return ClientView(
        client_id=row[0],
        segment=row[1],
        rm_id=row[2],
        turnover=row[3],
        month=row[4],
        in_default=bool(row[5]),
        features=row[6],
        offer_candidates=row[7],
        client_name=row[8],
    )


def portfolio_stamp(session: Session, rm_id: str) -> tuple[int, str | None]:
    """What changes when any feature snapshot of the RM's portfolio is refreshed, added or
    removed (or a client moves in or out): the number of snapshots and the latest refresh."""
    count, latest = session.execute(
        select(func.count(), func.max(_snapshots.c.computed_at))
        .select_from(_clients.join(_snapshots, _snapshots.c.client_id == _clients.c.client_id))
        .where(_clients.c.rm_id == rm_id)
    ).one()
    return int(count), None if latest is None else str(latest)


def portfolio_features(session: Session, rm_id: str) -> list[ClientView]:
    """Every client of an RM with its feature snapshot."""
    rows = session.execute(
        CLIENT_VIEW.join(_snapshots, _snapshots.c.client_id == _clients.c.client_id)
        .where(_clients.c.rm_id == rm_id)
        .order_by(_clients.c.client_id)
    ).all()
    return [client_view(r) for r in rows]


def held_products(session: Session, client_ids: Sequence[str]) -> dict[str, set[str]]:
    """Products each client holds now (open spells)."""
    held: dict[str, set[str]] = {c: set() for c in client_ids}
    if len(client_ids) == 1:  # a financing answer: the prepared statement
        rows = session.execute(_HELD_BY_ONE, {"client_id": client_ids[0]}).all()
    else:
        rows = session.execute(
            select(schema.Holding.client_id, schema.Holding.product_code).where(
                schema.Holding.client_id.in_(list(client_ids)), schema.Holding.end_month.is_(None)
            )
        ).all()
    for client_id, product in rows:
        held.setdefault(client_id, set()).add(product)
    return held


def data_currency(session: Session) -> str | None:
    """The currency of the money in the loaded data: that of the latest finished load."""
    return session.scalar(
        select(schema.IngestRun.currency)
        .where(schema.IngestRun.finished_at.is_not(None))
        .order_by(schema.IngestRun.id.desc())
        .limit(1)
    )


def catalog(session: Session) -> list[dict[str, Any]]:
    """The product catalog, each row with its extra parameters merged in."""
    out = []
    for row in session.scalars(select(schema.Product).order_by(schema.Product.product_code)):
        record = {
            c.name: getattr(row, c.name)
            for c in schema.Product.__table__.columns
            if c.name != "params"
        }
        out.append({**(row.params or {}), **record})
    return out


@dataclass(frozen=True)
class FeedbackEvent:
    """One feedback report on an offer of a product to a client."""

    client_id: str
    product_code: str
    outcome: str
    at: datetime
    recommendation_id: str


def contact_events(
    session: Session, client_ids: Sequence[str], since: datetime
) -> list[FeedbackEvent]:
    """The feedback on offers to ``client_ids`` reported since ``since``, oldest first: what the
    contact policy (:mod:`rmreco.modeling.contact`) reads."""
    # feedback alone (by client and time): its cost follows the feedback given, not the number
    # of recommendations ever served to these clients
    rows = session.execute(
        select(
            schema.Feedback.client_id,
            schema.Feedback.product_code,
            schema.Feedback.outcome,
            schema.Feedback.created_at,
            schema.Feedback.recommendation_id,
        )
        .where(
            schema.Feedback.client_id.in_(list(client_ids)),
            schema.Feedback.created_at >= since,
        )
        .order_by(schema.Feedback.created_at, schema.Feedback.id)
    ).all()
    return [FeedbackEvent(c, p, o, at, r) for c, p, o, at, r in rows]


def add_recommendations(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Write audit rows (each with its own ``id``) in the caller's transaction, in order (a
    decision row before the options that point at it)."""
    # one Core executemany, not the ORM's bulk path or unit of work: this runs on every answer
    now = schema.utcnow()
    columns = ("decision_id", "product_code", "rank", "policy_version", "features", "request")
    session.execute(
        _INSERT_RECOMMENDATION,
        [{"created_at": now, **dict.fromkeys(columns), **row} for row in rows],
    )


@dataclass(frozen=True)
class RecommendationRecord:
    id: str
    client_id: str
    rm_id: str | None
    product_code: str | None
    kind: str
    output: dict[str, Any]


def recommendation(session: Session, recommendation_id: str) -> RecommendationRecord | None:
    row = session.execute(
        select(
            schema.Recommendation.id,
            schema.Recommendation.client_id,
            schema.Client.rm_id,
            schema.Recommendation.product_code,
            schema.Recommendation.kind,
            schema.Recommendation.output,
        )
        .join(schema.Client, schema.Client.client_id == schema.Recommendation.client_id)
        .where(schema.Recommendation.id == recommendation_id)
    ).first()
    if row is None:
        return None
    return RecommendationRecord(
        id=row[0], client_id=row[1], rm_id=row[2], product_code=row[3], kind=row[4], output=row[5]
    )


@dataclass(frozen=True)
class RecordedFeedback:
    """A feedback report already recorded on a recommendation."""

    id: int
    outcome: str
    reason: str | None
    amount: float | None


def feedback_outcomes(session: Session, recommendation_id: str) -> list[RecordedFeedback]:
    """The feedback recorded on a recommendation, oldest first."""
    rows = session.execute(
        select(
            schema.Feedback.id,
            schema.Feedback.outcome,
            schema.Feedback.reason,
            schema.Feedback.amount,
        )
        .where(schema.Feedback.recommendation_id == recommendation_id)
        .order_by(schema.Feedback.created_at, schema.Feedback.id)
    ).all()
    return [RecordedFeedback(*row) for row in rows]


def add_feedback(
    session: Session,
    *,
    recommendation_id: str,
    client_id: str,
    product_code: str,
    user_id: int,
    outcome: str,
    reason: str | None,
    amount: float | None,
) -> int:
    row = schema.Feedback(
        recommendation_id=recommendation_id,
        client_id=client_id,
        product_code=product_code,
        user_id=user_id,
        outcome=outcome,
        reason=reason,
        amount=amount,
    )
    session.add(row)
    session.flush()
    return row.id


def final_feedback(session: Session, recommendation_id: str) -> RecordedFeedback | None:
    """The final outcome recorded on a recommendation (the database holds at most one)."""
    row = session.execute(
        select(
            schema.Feedback.id,
            schema.Feedback.outcome,
            schema.Feedback.reason,
            schema.Feedback.amount,
        ).where(
            schema.Feedback.recommendation_id == recommendation_id,
            schema.Feedback.outcome.in_(schema.FINAL_OUTCOMES),
        )
    ).first()
    return None if row is None else RecordedFeedback(*row)


@dataclass(frozen=True)
class StoredAnswer:
    """The answer given to a request sent with an idempotency key."""

    operation: str
    request_sha256: str
    status: int
    body: dict[str, Any]
    created_at: datetime


def stored_answer(session: Session, user_id: int, key: str) -> StoredAnswer | None:
    row = session.execute(
        select(
            schema.IdempotentAnswer.operation,
            schema.IdempotentAnswer.request_sha256,
            schema.IdempotentAnswer.status,
            schema.IdempotentAnswer.body,
            schema.IdempotentAnswer.created_at,
        ).where(schema.IdempotentAnswer.user_id == user_id, schema.IdempotentAnswer.key == key)
    ).first()
    return None if row is None else StoredAnswer(*row)


def store_answer(
    session: Session,
    *,
    user_id: int,
    key: str,
    operation: str,
    request_sha256: str,
    status: int,
    body: dict[str, Any],
    forget_before: datetime | None = None,
) -> None:
    """Remember an answer under (user, key), replacing an answer of that key older than
    ``forget_before`` (given when the caller saw one); raises IntegrityError when the key is
    taken by a newer one."""
    if forget_before is not None:
        # one row by its primary key: the older answers of everyone are forgotten in the
        # background (forget_answers), never by a scan on the request path
        session.execute(
            delete(schema.IdempotentAnswer).where(
                schema.IdempotentAnswer.user_id == user_id,
                schema.IdempotentAnswer.key == key,
                schema.IdempotentAnswer.created_at < forget_before,
            )
        )
    session.execute(
        insert(schema.IdempotentAnswer).values(
            user_id=user_id,
            key=key,
            operation=operation,
            request_sha256=request_sha256,
            status=status,
            body=body,
            created_at=schema.utcnow(),
        )
    )


def forget_answers(session: Session, before: datetime) -> int:
    """Delete the answers stored under idempotency keys before ``before``; how many."""
    result = session.execute(
        delete(schema.IdempotentAnswer).where(schema.IdempotentAnswer.created_at < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def sample_features(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """Feature snapshots of a few performing clients, for checking a model before serving it:
    each the features, with the offer candidates under ``"_offer_candidates"``."""
    rows = session.execute(
        select(schema.ClientFeatures.features, schema.ClientFeatures.offer_candidates)
        .where(schema.ClientFeatures.in_default.is_(False))
        .order_by(schema.ClientFeatures.client_id)
        .limit(limit)
    ).all()
    return [{**features, "_offer_candidates": candidates} for features, candidates in rows]


def client_portfolios(session: Session) -> list[tuple[str | None, str, str]]:
    """(RM id, segment, client id) of every client, by client id."""
    rows = session.execute(
        select(_clients.c.rm_id, _clients.c.segment, _clients.c.client_id).order_by(
            _clients.c.client_id
        )
    ).all()
    return [(rm_id, str(segment), str(client_id)) for rm_id, segment, client_id in rows]


def snapshot_params(session: Session) -> list[dict[str, Any] | None]:
    """The distinct builder settings the stored feature snapshots were computed with (None
    for rows that do not record them); empty when there are no snapshots."""
    rows = session.execute(
        select(schema.ClientFeatures.params).group_by(schema.ClientFeatures.params)
    ).all()
    return [row[0] for row in rows]


def set_user_key(session: Session, name: str, *, key_prefix: str, key_hash: str) -> bool:
    """Give an existing user a new key (the old one stops working at once)."""
    result = session.execute(
        update(schema.User)
        .where(schema.User.name == name)
        .values(api_key_prefix=key_prefix, api_key_hash=key_hash, revoked_at=None)
    )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class AuditedAnswer:
    """An audit row that holds its answer's inputs (a financing answer's decision row, or a
    cross-sell row), as stored: what an auditor re-scores."""

    id: str
    created_at: datetime
    kind: str
    client_id: str
    user_id: int
    model_versions: dict[str, Any]
    #: {model name: {version, run_id, artifact_sha256, served_from}}; None on rows written
    #: before it was recorded
    model_provenance: dict[str, Any] | None
    policy_version: str | None
    features: dict[str, Any]
    request: dict[str, Any] | None
    output: dict[str, Any]


def audited_answers(
    session: Session, kind: str, *, since: datetime | None = None, limit: int | None = None
) -> list[AuditedAnswer]:
    """The audit rows of ``kind`` ("financing" or "cross_sell") that hold their inputs (not a
    financing answer's option rows, whose inputs are their decision row's), oldest first,
    from ``since`` when given, at most ``limit``."""
    r = schema.Recommendation
    query = (
        select(
            r.id,
            r.created_at,
            r.kind,
            r.client_id,
            r.user_id,
            r.model_versions,
            r.model_provenance,
            r.policy_version,
            r.features,
            r.request,
            r.output,
        )
        .where(r.kind == kind, r.features.is_not(None))
        .order_by(r.created_at, r.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(r.created_at >= since)
    return [AuditedAnswer(*row) for row in session.execute(query).all()]
