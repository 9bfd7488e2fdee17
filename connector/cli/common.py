"""What every ``hub-scim`` command shares: ``--database-url``, a session, clean errors.

A module that adds commands (``connector.cli.main`` registers them) builds them
from these, so that every command behaves alike: ``--database-url`` (else
``HUB_SCIM_DATABASE_URL``, else the default), a session on a migrated database
committed when the command succeeds, and expected failures printed as one
``Error:`` line with exit status 1, never a traceback. Raise
``click.ClickException`` for a failure of the command's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from connector.db.engine import make_engine, make_session_factory
from connector.db.migrations import current_revision, head_revision
from connector.errors import HubError, answer_for
from connector.settings import Settings, SettingsError, load_settings

P = ParamSpec("P")
R = TypeVar("R")

database_url_option = click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="sqlite:///PATH or postgresql://USER@HOST/DB "
    "(default: $HUB_SCIM_DATABASE_URL, else a SQLite file in the user's data directory).",
)


class Refusal(click.ClickException):
    """A refusal of the connector as one ``Error:`` line, with the exit status of its kind."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click reads ``exit_code``, declared on the class; this one is per refusal.
        vars(self)["exit_code"] = exit_code


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one ``Error:`` line and the exit status of their kind.

    A refusal of the connector (:class:`connector.errors.HubError`) exits with
    the status :data:`connector.errors.ANSWERS` gives its kind; a configuration
    or database failure, and a failure of the command's own, with 1.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SettingsError as error:
            raise click.ClickException(f"configuration: {error}") from None
        except HubError as error:
            raise Refusal(str(error), answer_for(error).exit_code) from None
        except SQLAlchemyError as error:
            cause = str(getattr(error, "orig", None) or error).strip().splitlines()
            raise click.ClickException(
                f"database: {cause[0] if cause else type(error).__name__}"
            ) from None

    return wrapper


def command_settings(**overrides: Any) -> Settings:
    """The settings, with the command's flags (None: not given) over the environment."""
    return load_settings(**overrides)


def public_origin(settings: Settings) -> str:
    """Where IdPs and browsers reach the service: the public base URL, else host and port."""
    if settings.public_base_url:
        return settings.public_base_url
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def redacted(database_url: str) -> str:
    """A database URL fit to print: the password hidden."""
    return make_url(database_url).render_as_string(hide_password=True)


@contextmanager
def command_session(database_url: str | None) -> Iterator[Session]:
    """A session on a migrated database, committed when the block succeeds."""
    settings = command_settings(database_url=database_url)
    engine = make_engine(settings.database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            at = current_revision(connection)
        if at != head_revision():
            raise click.ClickException(
                f"the database {redacted(settings.database_url)} is not migrated "
                f"(at {at or 'no revision'}): run `hub-scim db upgrade` first"
            )
        with make_session_factory(engine)() as session:
            yield session
            session.commit()
    finally:
        engine.dispose()
