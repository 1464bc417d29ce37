"""This module owns how the service runs under uvicorn: the server's configuration from the
settings (keep-alive and header timeouts), the HTTP protocol that closes connections which do
not finish their headers in time, and :func:`serve`, which ``rmreco serve`` and ``rmreco demo``
both call to run one process or several workers on one database.

Workers are separate processes that build the app themselves
(:func:`app_from_environment`): the settings come from the ``RMRECO_*`` environment as ever,
and the options of ``rmreco serve`` travel in the variables of :data:`SERVE_ENV`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from rmreco.config import Settings, get_settings
from rmreco.serving.app import DEFAULT_POLL_SECONDS, create_app

log = logging.getLogger(__name__)

#: The import string of the app factory each worker calls.
APP_FACTORY = "rmreco.serving.server:app_from_environment"

#: The environment variables that carry ``rmreco serve``'s options to its workers.
ENV_TRACKING_URI = "RMRECO_SERVE_TRACKING_URI"
ENV_POLICY = "RMRECO_SERVE_POLICY"
ENV_POLL_SECONDS = "RMRECO_SERVE_POLL_SECONDS"
SERVE_ENV = (ENV_TRACKING_URI, ENV_POLICY, ENV_POLL_SECONDS)


def service_environment(
    *, tracking_uri: str | None, policy_path: Path | None, poll_seconds: float
) -> dict[str, str]:
    """The variables of :data:`SERVE_ENV` that hand these options to the workers (an option
    left to its default is an empty variable)."""
    return {
        ENV_TRACKING_URI: tracking_uri or "",
        ENV_POLICY: str(policy_path.resolve()) if policy_path else "",
        ENV_POLL_SECONDS: repr(float(poll_seconds)),
    }


def app_from_environment() -> FastAPI:
    """The service as the environment describes it: the ``RMRECO_*`` settings and the options
    of :data:`SERVE_ENV`. Each worker calls this.

    Raises:
        ConfigurationError: the credit policy or the models folder cannot be read.
        ValueError: ``RMRECO_SERVE_POLL_SECONDS`` is not a number.
    """
    policy = os.environ.get(ENV_POLICY)
    poll = os.environ.get(ENV_POLL_SECONDS)
    return create_app(
        get_settings(),
        tracking_uri=os.environ.get(ENV_TRACKING_URI) or None,
        policy_path=Path(policy) if policy else None,
        poll_seconds=float(poll) if poll else DEFAULT_POLL_SECONDS,
    )


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration, and the time a connection has to send a request's headers
    (read by :class:`HeaderTimeoutProtocol`). Picklable: workers receive it."""

    def __init__(self, app: Any, *, header_timeout_seconds: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.header_timeout_seconds = header_timeout_seconds


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, and a deadline for the request headers, which uvicorn
    lacks: a client that opens a connection (or finishes a response) and then sends its headers
    a byte at a time would hold the connection for ever (slowloris). The timer starts when the
    connection opens and again after each response, stops when a request's headers are
    complete, and closes the connection when it fires. An idle keep-alive connection is closed
    earlier by uvicorn's own ``timeout_keep_alive``."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, ServerConfig):
            raise TypeError("HeaderTimeoutProtocol needs a ServerConfig (its header timeout)")
        self.header_timeout = config.header_timeout_seconds
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # a pipelined request whose headers are in already is answered next: no deadline then
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            log.info("closed a connection without complete headers in %ss", self.header_timeout)
            self.transport.close()


#: How long the supervisor of several workers waits for one to answer before it replaces it.
WORKER_HEALTHCHECK_SECONDS = 60


def server_config(
    settings: Settings,
    app: FastAPI | str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    log_level: str = "warning",
) -> ServerConfig:
    """uvicorn's configuration for the service: the app (or :data:`APP_FACTORY` for workers),
    the header and keep-alive timeouts of ``settings`` and the protocol that enforces the
    first."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "factory": isinstance(app, str),
        "http": HeaderTimeoutProtocol,
        # uvicorn annotates it as int; it is handed to loop.call_later, which takes any float
        "timeout_keep_alive": settings.keep_alive_seconds,
        "log_level": log_level,
        # A spawned worker answers the supervisor's health pings only once it has imported the
        # service (mlflow, LightGBM, pandas: seconds, and many more on a busy machine); with
        # uvicorn's 5 s a worker still importing was killed as hung, again and again, and
        # `--workers 2` never came up under load. A worker that is really hung is still
        # replaced, after this long.
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
    return ServerConfig(app, header_timeout_seconds=settings.header_timeout_seconds, **options)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    tracking_uri: str | None = None,
    policy_path: Path | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
) -> None:
    """Run the service until it is stopped: one process, or ``workers`` processes that share
    the listening socket and the database. With several workers, each builds its app from the
    environment (:func:`app_from_environment`), so ``settings`` must be the environment's.

    Raises:
        ConfigurationError: the credit policy or the models folder cannot be read (checked here
            once, before any worker starts).
        SystemExit: with uvicorn's startup-failure code when the service could not start (the
            port is taken, the app's start-up failed).
    """
    # built here even when workers build their own: a wrong policy or models folder is one
    # clear error now instead of a traceback per worker
    application = create_app(
        settings, tracking_uri=tracking_uri, policy_path=policy_path, poll_seconds=poll_seconds
    )
    if workers <= 1:
        uvicorn.Server(server_config(settings, application, host=host, port=port)).run()
        return
    # the workers are spawned (not forked): they inherit the environment, not this process
    os.environ.update(
        service_environment(
            tracking_uri=tracking_uri, policy_path=policy_path, poll_seconds=poll_seconds
        )
    )
    config = server_config(settings, APP_FACTORY, host=host, port=port, workers=workers)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        # the supervisor stops when a worker cannot start; say so as uvicorn does for one
        # process (its log says why)
        raise SystemExit(STARTUP_FAILURE)
