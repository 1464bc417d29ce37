"""The ``rmreco`` command line: one Typer app with a sub-app per area.

Each command is a thin call into the library. Domain errors are translated to messages and exit
codes in one place, :func:`main`. Heavy libraries are imported inside the commands so that
``--help`` stays quick.
"""

from __future__ import annotations

from rmreco.cli.app import app, main

__all__ = ["app", "main"]
