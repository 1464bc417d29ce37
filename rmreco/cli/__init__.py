"""The ``rmreco`` command line: the root app of :mod:`rmreco.cli.main` with the commands of each
area (``data``, ``data check``, ``train``, ``models``, ``users``, ``serve``) added to it.

Each command is a thin call into the library. Domain errors are translated to messages and exit
codes in one place, :func:`rmreco.cli.main.translate_errors`. Heavy libraries are imported
inside the commands so that ``--help`` stays quick.
"""

from __future__ import annotations

from rmreco.cli import check, data, models, serve, train, users
from rmreco.cli.main import app, main

for _area in (data, check, train, models, users, serve):
    app.add_typer(_area.app)

__all__ = ["app", "main"]
