"""This module owns the user commands of the CLI: ``users create`` (a user and their API key,
shown once) and ``users revoke``."""

from __future__ import annotations

from typing import Annotated

import typer

from rmreco.cli.main import DbOption, open_engine, out_console, translate_errors
from rmreco.domain.names import RM_ROLES, USER_ROLES

app = typer.Typer()
users_app = typer.Typer(help="Users of the service and their API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")

_ROLE_LIST = f"{', '.join(USER_ROLES[:-1])} or {USER_ROLES[-1]}"
_RM_ROLE_LIST = f"{', '.join(RM_ROLES[:-1])} or {RM_ROLES[-1]}"


@users_app.command("create")
@translate_errors
def users_create(
    name: Annotated[str, typer.Option("--name", help="Unique user name.")],
    role: Annotated[str, typer.Option("--role", help=f"{_ROLE_LIST}.")],
    rm_id: Annotated[
        str | None,
        typer.Option("--rm-id", help=f"The RM this user is (needed for {_RM_ROLE_LIST})."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a user and print their API key once (only its hash is stored)."""
    from rmreco.db import repository as repo
    from rmreco.db.engine import session_factory, transaction
    from rmreco.serving.security import issue_key

    if role not in USER_ROLES:
        raise typer.BadParameter(
            f"role must be one of {', '.join(USER_ROLES)}", param_hint="--role"
        )
    if role in RM_ROLES and not rm_id:
        raise typer.BadParameter(f"a {role} user needs --rm-id", param_hint="--rm-id")
    engine = open_engine(db)
    try:
        with transaction(session_factory(engine)) as session:
            if repo.user_by_name(session, name) is not None:
                raise typer.BadParameter(f"a user named {name!r} exists", param_hint="--name")
            if rm_id is not None and not repo.rm_exists(session, rm_id):
                raise typer.BadParameter(
                    f"no relationship manager {rm_id!r} is loaded", param_hint="--rm-id"
                )
            key = issue_key()
            repo.add_user(
                session, name=name, role=role, rm_id=rm_id, key_prefix=key.prefix, key_hash=key.hash
            )
    finally:
        engine.dispose()
    out_console.print(f"user {name} ({role}) created; API key (shown once):")
    print(key.key)


@users_app.command("revoke")
@translate_errors
def users_revoke(
    name: Annotated[str, typer.Option("--name", help="The user to revoke.")],
    db: DbOption = None,
) -> None:
    """Revoke a user's API key at once."""
    from datetime import UTC, datetime

    from rmreco.db import repository as repo
    from rmreco.db.engine import session_factory, transaction

    engine = open_engine(db)
    try:
        with transaction(session_factory(engine)) as session:
            if not repo.revoke_user(session, name, datetime.now(UTC)):
                raise typer.BadParameter(f"no active user named {name!r}", param_hint="--name")
    finally:
        engine.dispose()
    out_console.print(f"user {name} revoked")
