"""This module owns the service's state while it runs: the :class:`Runtime` the lifespan builds
(settings, session factory, model store, credit policy, reference data and the scored-portfolio
cache), which registered models the service follows (from the specs of the models folder), and
the two database chores every route shares: :func:`commit` and :func:`database_ok`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rmreco.config import Settings
from rmreco.db import repository as repo
from rmreco.db.engine import transaction
from rmreco.domain.errors import ConfigurationError
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.policy import CreditPolicy
from rmreco.modeling.propensity import PropensityModel
from rmreco.modeling.spec import find_specs
from rmreco.serving.errors import unavailable
from rmreco.serving.model_store import ModelKind, ModelStore

log = logging.getLogger(__name__)

_Model = TypeVar("_Model", CreditRiskModel, PropensityModel)


def served_kinds(models_dir: Path) -> list[ModelKind]:
    """The registered models the service follows (their ``champion`` alias): one per spec of
    the models folder, named by the spec, each with the family it must be of. Models of a family
    serve the segments they were trained on, side by side (an SME and a corporate credit model;
    a business and a personal cross-sell model).

    Raises:
        ConfigurationError: a spec is invalid, or two specs of one family name the same segment
            (the service would not know which of them answers for its clients).
    """
    specs = find_specs(models_dir)
    owner: dict[tuple[str, str], str] = {}
    for found in specs:
        for segment in found.spec.segments:
            key = (found.spec.kind, str(segment))
            if key in owner:
                raise ConfigurationError(
                    f"models folder {models_dir}: {owner[key]} and {found.path.name} are both "
                    f"{found.spec.kind} specs for segment '{segment}'; one model answers for a "
                    "segment"
                )
            owner[key] = found.path.name
    return [ModelKind(f.spec.name, f.spec.kind) for f in specs]


@dataclass
class Runtime:
    """What the lifespan builds once and every request reads."""

    settings: Settings
    factory: sessionmaker[Session]
    store: ModelStore
    policy: CreditPolicy
    poll_seconds: float
    catalog_seconds: float = 60.0
    _reference: tuple[float, list[dict[str, Any]], str] | None = None
    #: Scored cross-sell portfolios by RM (least recently used first), each with the key it
    #: is valid for: the portfolio's snapshot stamp and the model versions.
    portfolios: OrderedDict[str, tuple[Any, Any]] = field(default_factory=OrderedDict)
    portfolio_cache_size: int = 256
    #: what :meth:`now` reads; tests move it to check contact windows
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _slots: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def database_slot(self) -> AsyncIterator[None]:
        """Hold one of the worker's database connections' worth of work: at most
        ``settings.db_pool_size`` requests do database work at once, so none waits for a
        connection in a thread.

        Raises:
            ApiError: 503 ``unavailable`` when no slot frees within
                ``settings.db_pool_timeout_seconds`` (the database is slow or stuck).
        """
        if self._slots is None:  # made on the event loop that serves, not at construction
            self._slots = asyncio.Semaphore(self.settings.db_pool_size)
        try:
            if self._slots.locked():  # every slot taken: wait, but not for ever
                await asyncio.wait_for(self._slots.acquire(), self.settings.db_pool_timeout_seconds)
            else:  # a free slot: taken at once, without the timer wait_for sets up
                await self._slots.acquire()
        except TimeoutError:
            log.warning("no database connection freed within the pool timeout")
            raise unavailable("the service is busy; try again") from None
        try:
            yield
        finally:
            self._slots.release()

    def _reference_data(self, session: Session) -> tuple[float, list[dict[str, Any]], str]:
        # read at most once a minute: the catalog and the currency change only with a load
        now = time.monotonic()
        if self._reference is None or now - self._reference[0] > self.catalog_seconds:
            currency = repo.data_currency(session) or self.settings.currency
            self._reference = (now, repo.catalog(session), currency)
        return self._reference

    def now(self) -> datetime:
        """The service's clock (UTC): contact windows are counted from it."""
        return self.clock()

    def model(self, name: str, family: type[_Model]) -> tuple[_Model, str] | None:
        """The model served under ``name`` and its version; None while none of ``family`` is
        (the store checked the family when it loaded the model)."""
        served = self.store.current.get(name)
        if served is None or not isinstance(served.model, family):
            return None
        return served.model, served.version

    def catalog(self, session: Session) -> list[dict[str, Any]]:
        """The product catalog."""
        return self._reference_data(session)[1]

    def currency(self, session: Session) -> str:
        """ISO 4217 code of the money in the loaded data (the latest load's, else the
        ``RMRECO_CURRENCY`` setting): every amount the service answers is in it."""
        return self._reference_data(session)[2]


def commit(session: Session) -> None:
    """Commit before the answer leaves; a failure is a retryable 503, never an unrecorded answer.

    Raises:
        ApiError: 503 ``unavailable`` when the commit fails (the session is rolled back).
    """
    try:
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("could not record the answer: %s", type(exc).__name__)
        raise unavailable("the answer could not be recorded; try again") from None


def database_ok(factory: sessionmaker[Session]) -> bool:
    """Whether the database answers a trivial query."""
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


async def forget_in_background(
    factory: sessionmaker[Session],
    every_seconds: float,
    forget: Callable[[Session], int],
    what: str,
) -> None:
    """Run ``forget`` (a delete of rows that ran out, returning how many) in its own
    transaction now and every ``every_seconds``, off the request path; ``what`` names the rows
    in the log. Never raises: a database that is down is tried again at the next round."""

    def run() -> int:
        with transaction(factory) as session:
            return forget(session)

    while True:
        try:
            forgotten = await asyncio.to_thread(run)
            if forgotten:
                log.info("forgot %d %s", forgotten, what)
        except SQLAlchemyError as exc:
            log.warning("could not forget %s: %s", what, type(exc).__name__)
        await asyncio.sleep(every_seconds)
