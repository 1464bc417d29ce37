"""The relational schema: every table of the database, as SQLAlchemy 2 typed ORM mappings.

This module owns the tables and their constraints; migrations (``rmreco.db.migrations``) create
exactly this schema (a test compares them). Two groups of tables:

- The input tables of the data contract (``rmreco.domain.contract``): relationship_managers,
  products, clients, account_months, holdings, credit_events, financials. Their column names and
  Python types are written out here so that code using the mappings is typed; everything else the
  contract says -- primary keys (the natural keys), foreign keys (the references), check
  constraints for ranges, levels and ordered column pairs -- is generated from the contract by
  :func:`contract_table_args`, so it is spelled once. A test checks the written-out columns
  against the contract (names, kinds, nullability).
  ``clients`` and ``financials`` also hold the bank's own columns beyond the contract, as JSON
  ``{name: value}`` in ``extra`` (the contract's ``Table.extras_column``), and ``extra_columns``
  records each such column's kind (numeric or categorical) once for the database: one row per
  (table, column), so a column keeps one kind across loads by its primary key, and reading the
  kinds back is one small query rather than a merge over every load's record.
- The tables of the application: ``ingest_runs`` (one row per successful load),
  ``users`` (API keys stored hashed only), ``recommendations`` (the audit trail of everything
  served) and ``feedback`` (what the client did with an offer).

Money is ``Float`` (double precision), not ``Numeric``: these amounts are monthly aggregates and
declared figures that feed models, not ledger balances that must add up to the cent; double
precision is exact to the cent below 10^13; pandas and the models work in float64, and
``Numeric`` would come back as ``Decimal`` from PostgreSQL (slow, and converted straight back)
while SQLite stores it as a float anyway. Enumerations are strings with CHECK constraints rather
than native enum types, so adding a level is a plain migration on both databases.

Timestamps are timezone-aware UTC on PostgreSQL; SQLite keeps no zone, so values read back from
SQLite are naive and mean UTC.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rmreco.domain import contract
from rmreco.domain.names import USER_ROLES

#: Constraint names follow one pattern on every database, so migrations can name what they alter.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (binary, indexable, compared by value); plain JSON text elsewhere. None is
# stored as SQL NULL (not the JSON text 'null'), so "IS NULL" finds an empty value.
JsonType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

RECOMMENDATION_KINDS: tuple[str, ...] = ("financing", "cross_sell")
FEEDBACK_OUTCOMES: tuple[str, ...] = ("offered", "accepted", "declined", "not_interested")
INGEST_STATUSES: tuple[str, ...] = ("running", "succeeded", "failed")
#: Outcomes that close a recommendation: at most one of them per recommendation.
FINAL_OUTCOMES: tuple[str, ...] = ("accepted", "declined", "not_interested")
FINAL_OUTCOME_SQL = text("outcome IN ({})".format(", ".join(f"'{o}'" for o in FINAL_OUTCOMES)))


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the default of every ``created_at``)."""
    return datetime.now(UTC)


def new_uuid() -> str:
    """A time-ordered UUID (version 7, RFC 9562) as text, the identifier of a served
    recommendation: 48 bits of Unix milliseconds, then 74 random bits.

    Identifiers of rows written one after another sort one after another, so each insert lands
    at the right edge of the primary-key index instead of on a random page of it: on a large
    audit table a random (version 4) key dirtied a page per row and made every commit write
    more. Still unguessable enough for an identifier that is never a credential."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    return str(uuid.UUID(int=value))


def _sql_literal(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _in_check(column: str, levels: tuple[str, ...], name: str) -> CheckConstraint:
    quoted = ", ".join("'" + level.replace("'", "''") + "'" for level in levels)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


def contract_table_args(table: contract.Table) -> tuple[Any, ...]:
    """Constraints of a contract table, generated from the contract.

    The natural key becomes the primary key, each reference a foreign key, each range (``ge``,
    ``le``) and set of levels a CHECK constraint, each ordered pair (start, end) a CHECK that the
    end, when present, is not before the start.
    """
    args: list[Any] = [PrimaryKeyConstraint(*table.key)]
    for ref in table.references:
        args.append(ForeignKeyConstraint([ref.column], [f"{ref.target_table}.{ref.target_column}"]))
    for col in table.columns:
        if col.ge is not None:
            args.append(
                CheckConstraint(f"{col.name} >= {_sql_literal(col.ge)}", name=f"{col.name}_ge")
            )
        if col.le is not None:
            args.append(
                CheckConstraint(f"{col.name} <= {_sql_literal(col.le)}", name=f"{col.name}_le")
            )
        if col.levels is not None:
            args.append(_in_check(col.name, col.levels, f"{col.name}_level"))
    for start, end in table.ordered:
        args.append(
            CheckConstraint(f"{end} IS NULL OR {end} >= {start}", name=f"{end}_not_before_{start}")
        )
    return tuple(args)


class Base(DeclarativeBase):
    """Declarative base; its ``metadata`` is the whole schema."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --- the input tables of the data contract -------------------------------------------------


class RelationshipManager(Base):
    __tablename__ = contract.RELATIONSHIP_MANAGERS.name
    __table_args__ = contract_table_args(contract.RELATIONSHIP_MANAGERS)

    rm_id: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    role: Mapped[str] = mapped_column(String(16))
    team: Mapped[str | None] = mapped_column(String)
    region: Mapped[str | None] = mapped_column(String)


class Product(Base):
    __tablename__ = contract.PRODUCTS.name
    __table_args__ = contract_table_args(contract.PRODUCTS)

    product_code: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String(16))
    segments: Mapped[str] = mapped_column(String)
    lgd: Mapped[float | None] = mapped_column(Float)
    margin_rate: Mapped[float | None] = mapped_column(Float)
    annual_fee: Mapped[float | None] = mapped_column(Float)
    min_age_months: Mapped[int | None] = mapped_column(Integer)
    max_tenor_months: Mapped[int | None] = mapped_column(Integer)
    limit_turnover_share: Mapped[float | None] = mapped_column(Float)
    #: Catalog columns a bank adds beyond the contract (pricing parameters, eligibility flags).
    params: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class Client(Base):
    __tablename__ = contract.CLIENTS.name
    __table_args__ = (
        *contract_table_args(contract.CLIENTS),
        Index(None, "rm_id"),
    )

    client_id: Mapped[str] = mapped_column(String)
    #: The client's legal or personal name, for people to read (migration 0010); never a
    #: feature. Null where the bank's extract gives none.
    name: Mapped[str | None] = mapped_column(String(contract.CLIENT_NAME_MAX_LENGTH))
    segment: Mapped[str] = mapped_column(String(16))
    sector: Mapped[str | None] = mapped_column(String(1))
    region: Mapped[str | None] = mapped_column(String)
    founded: Mapped[date | None] = mapped_column(Date)
    employees: Mapped[int | None] = mapped_column(Integer)
    turnover: Mapped[float | None] = mapped_column(Float)
    rm_id: Mapped[str | None] = mapped_column(String)
    onboarded: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[str | None] = mapped_column(String(3))
    as_of_month: Mapped[date | None] = mapped_column(Date)
    #: The bank's own columns of the client ({name: value}; kinds in ``extra_columns``).
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class AccountMonth(Base):
    __tablename__ = contract.ACCOUNT_MONTHS.name
    # The primary key (client_id, month) also serves "one client's history"; "all clients in
    # a month" (snapshots) gets its own index.
    __table_args__ = (
        *contract_table_args(contract.ACCOUNT_MONTHS),
        Index(None, "month"),
    )

    client_id: Mapped[str] = mapped_column(String)
    month: Mapped[date] = mapped_column(Date)
    balance_avg: Mapped[float] = mapped_column(Float)
    balance_min: Mapped[float | None] = mapped_column(Float)
    balance_max: Mapped[float | None] = mapped_column(Float)
    credit_turnover: Mapped[float] = mapped_column(Float)
    debit_turnover: Mapped[float] = mapped_column(Float)
    n_credit_tx: Mapped[int | None] = mapped_column(Integer)
    n_debit_tx: Mapped[int | None] = mapped_column(Integer)
    overdraft_limit: Mapped[float | None] = mapped_column(Float)
    overdraft_peak_use: Mapped[float | None] = mapped_column(Float)
    days_in_overdraft: Mapped[int | None] = mapped_column(Integer)
    dpd_max: Mapped[int | None] = mapped_column(Integer)
    returned_payments: Mapped[int | None] = mapped_column(Integer)
    intl_payments: Mapped[float | None] = mapped_column(Float)
    payroll_outflow: Mapped[float | None] = mapped_column(Float)
    card_spend: Mapped[float | None] = mapped_column(Float)
    acquiring_inflow: Mapped[float | None] = mapped_column(Float)


class Holding(Base):
    __tablename__ = contract.HOLDINGS.name
    __table_args__ = (
        *contract_table_args(contract.HOLDINGS),
        Index(None, "product_code"),
    )

    client_id: Mapped[str] = mapped_column(String)
    product_code: Mapped[str] = mapped_column(String)
    start_month: Mapped[date] = mapped_column(Date)
    end_month: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[float | None] = mapped_column(Float)


class CreditEvent(Base):
    __tablename__ = contract.CREDIT_EVENTS.name
    __table_args__ = contract_table_args(contract.CREDIT_EVENTS)

    client_id: Mapped[str] = mapped_column(String)
    month: Mapped[date] = mapped_column(Date)
    event_type: Mapped[str] = mapped_column(String(16))


class Financial(Base):
    __tablename__ = contract.FINANCIALS.name
    __table_args__ = contract_table_args(contract.FINANCIALS)

    client_id: Mapped[str] = mapped_column(String)
    year: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[float | None] = mapped_column(Float)
    ebitda: Mapped[float | None] = mapped_column(Float)
    total_assets: Mapped[float | None] = mapped_column(Float)
    total_debt: Mapped[float | None] = mapped_column(Float)
    equity: Mapped[float | None] = mapped_column(Float)
    current_assets: Mapped[float | None] = mapped_column(Float)
    current_liabilities: Mapped[float | None] = mapped_column(Float)
    #: The bank's own columns of the statement ({name: value}; kinds in ``extra_columns``).
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


#: ORM class of each contract table, by table name.
CONTRACT_MODELS: dict[str, type[Base]] = {
    m.__tablename__: m
    for m in (RelationshipManager, Product, Client, AccountMonth, Holding, CreditEvent, Financial)
}


# --- the application's tables --------------------------------------------------------------


class IngestRun(Base):
    """One successful load of an input folder (a refused or failed load leaves no row)."""

    __tablename__ = "ingest_runs"
    __table_args__ = (
        _in_check("status", INGEST_STATUSES, "status_level"),
        Index(None, "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(Text)
    #: sha256 over the input files' names and bytes: the same files give the same fingerprint.
    fingerprint: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    #: Data rows read per table, e.g. {"clients": 2000, "account_months": 72000}.
    row_counts: Mapped[dict[str, int]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default="running")


class ExtraColumn(Base):
    """One of the bank's own columns of ``clients`` or ``financials`` and its kind, fixed by the
    load that first brought it; a later load with another kind for it is refused."""

    __tablename__ = "extra_columns"
    __table_args__ = (
        _in_check(
            "table_name",
            tuple(t.name for t in contract.TABLES if t.extras == "features"),
            "table_name_level",
        ),
        _in_check("kind", contract.EXTRA_KINDS, "kind_level"),
    )

    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    column_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: The load that first brought the column.
    ingest_run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id"))


class User(Base):
    """Someone who may call the service. The API key itself is never stored, only its hash."""

    __tablename__ = "users"
    __table_args__ = (
        _in_check("role", USER_ROLES, "role_level"),
        Index(None, "api_key_prefix", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    #: The RM this user is, for brm/crm/prm users: they see only this RM's portfolio.
    rm_id: Mapped[str | None] = mapped_column(
        ForeignKey(f"{contract.RELATIONSHIP_MANAGERS.name}.rm_id")
    )
    #: First characters of the key, shown to admins and used to find the row before the hash
    #: is compared in constant time.
    api_key_prefix: Mapped[str] = mapped_column(String(16))
    #: Hash of the whole key, e.g. "scrypt$<salt>$<hex>" or "sha256$<hex>".
    api_key_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Recommendation(Base):
    """One recommendation served to a user, stored in the same transaction as the answer.

    Append-only: the database refuses an UPDATE or DELETE of a row (triggers created by
    migration 0009), so the audit trail of what was served cannot be rewritten."""

    __tablename__ = "recommendations"
    __table_args__ = (
        _in_check("kind", RECOMMENDATION_KINDS, "kind_level"),
        CheckConstraint("rank >= 1", name="rank_ge"),
        Index(None, "client_id", "created_at"),
        Index(None, "user_id", "created_at"),
        Index(None, "created_at"),
        Index(None, "decision_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The decision row this option belongs to (a financing answer is one decision row and one
    #: row per option); the decision row holds the features and the request of all of them.
    decision_id: Mapped[str | None] = mapped_column(ForeignKey("recommendations.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    client_id: Mapped[str] = mapped_column(ForeignKey(f"{contract.CLIENTS.name}.client_id"))
    kind: Mapped[str] = mapped_column(String(16))
    product_code: Mapped[str | None] = mapped_column(
        ForeignKey(f"{contract.PRODUCTS.name}.product_code")
    )
    #: 1 = best; empty for an answer without a ranked product (e.g. a declined request).
    rank: Mapped[int | None] = mapped_column(Integer)
    #: {"registered model name": "version"} of every model that produced the answer.
    model_versions: Mapped[dict[str, Any]] = mapped_column(JsonType)
    #: {"registered model name": {"version", "run_id", "artifact_sha256", "served_from"}} of
    #: the same models: the MLflow run that trained the version, the sha256 of the model files
    #: the service loaded, and "registry" or "local_copy" (``rmreco.serving.model_store``).
    #: Null on rows written before it was recorded (migration 0009).
    model_provenance: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    policy_version: Mapped[str | None] = mapped_column(String(64))
    #: The exact feature values the model saw; empty on an option row, whose features are those
    #: of its decision row (``decision_id``): stored once per answer, not once per option.
    features: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    output: Mapped[dict[str, Any]] = mapped_column(JsonType)
    #: What was asked (empty on an option row: see its decision row).
    request: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class Feedback(Base):
    """What became of a recommendation, reported by an RM.

    Append-only like ``recommendations``: a later report is a new row, never a change."""

    __tablename__ = "feedback"
    __table_args__ = (
        _in_check("outcome", FEEDBACK_OUTCOMES, "outcome_level"),
        CheckConstraint("amount >= 0", name="amount_ge"),
        Index(None, "recommendation_id"),
        Index(None, "created_at"),
        Index(None, "client_id", "created_at"),
        # one final outcome per recommendation, enforced where two workers cannot both pass a
        # check: the second insert of a final outcome fails, whichever process makes it
        Index(
            "uq_feedback_final_outcome",
            "recommendation_id",
            unique=True,
            sqlite_where=FINAL_OUTCOME_SQL,
            postgresql_where=FINAL_OUTCOME_SQL,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recommendation_id: Mapped[str] = mapped_column(ForeignKey("recommendations.id"))
    #: The recommendation's client and product, copied (they never change): "what did this
    #: portfolio decline lately" and the KPIs read feedback alone, without walking every
    #: recommendation ever served to the portfolio.
    client_id: Mapped[str] = mapped_column(ForeignKey(f"{contract.CLIENTS.name}.client_id"))
    product_code: Mapped[str] = mapped_column(ForeignKey(f"{contract.PRODUCTS.name}.product_code"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IdempotentAnswer(Base):
    """The answer given to a mutating request sent with an ``Idempotency-Key``: a retry with the
    same key and the same request gets the same answer (status and body) and changes nothing.

    Keyed by (user, key): keys are the caller's, so two users cannot collide or read each
    other's answers. Written in the transaction of the answer itself, so a key is remembered if
    and only if what the answer recorded is.
    """

    __tablename__ = "idempotent_answers"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "key"),
        Index(None, "created_at"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    #: "POST /v1/..." of the first request: a key is not reused for another operation.
    operation: Mapped[str] = mapped_column(Text)
    #: sha256 of the first request's body: the same key with another body is refused.
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FeedbackConflict(Base):
    """A final outcome recorded after another one on the same recommendation, before the
    database enforced one final outcome per recommendation (migration 0008 moved such rows
    here from ``feedback``, so the KPIs count one outcome and nothing reported is lost)."""

    __tablename__ = "feedback_conflicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str] = mapped_column(String)
    product_code: Mapped[str] = mapped_column(String)
    user_id: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClientFeatures(Base):
    """The latest point-in-time features of each client, computed from the stored history.

    Derived data, refreshed after every load (``rmreco features refresh``): the service reads
    one row per request instead of rebuilding features from the history (measured: 26 ms per
    client with the feature builder, against well under a millisecond for this row).
    """

    __tablename__ = "client_features"
    __table_args__ = (Index(None, "month"),)

    client_id: Mapped[str] = mapped_column(
        ForeignKey(f"{contract.CLIENTS.name}.client_id"), primary_key=True
    )
    #: The snapshot month the features describe (the client's latest month of history).
    month: Mapped[date] = mapped_column(Date)
    in_default: Mapped[bool] = mapped_column(Boolean)
    #: {feature name: value}; null for a feature that could not be computed.
    features: Mapped[dict[str, Any]] = mapped_column(JsonType)
    #: The cross-sell rows of the client at ``month``: {"holdings": {holdings feature: value},
    #: "products": {product code: {product feature: value}}} for the eligible products it does
    #: not hold; null when the catalog or the client's month gives none.
    offer_candidates: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    #: The feature-builder settings the row was computed with ({setting: value}, see
    #: ``rmreco.features.config.SnapshotParams``); null for rows refreshed before they were kept.
    params: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebSession(Base):
    """A sign-in to the RM workspace in the browser. The browser holds a random token in an
    http-only cookie; the table keeps only its sha256, so a copy of the table signs no one in.
    Each form of the session carries ``csrf_token``. Signing out deletes the row; a row past
    ``expires_at`` signs no one in and is forgotten by the service in the background."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index(None, "expires_at"),)

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
