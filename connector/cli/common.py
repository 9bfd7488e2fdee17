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
from connector.settings import Settings, SettingsError, load_settings
from connector.tenancy.credentials import CredentialNotFoundError
from connector.tenancy.organizations import OrganizationExistsError, OrganizationNotFoundError

P = ParamSpec("P")
R = TypeVar("R")

database_url_option = click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="sqlite:///PATH or postgresql://USER@HOST/DB "
    "(default: $HUB_SCIM_DATABASE_URL, else a SQLite file in the user's data directory).",
)


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one ``Error:`` line and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SettingsError as error:
            raise click.ClickException(f"configuration: {error}") from None
        except OrganizationNotFoundError as error:
            raise click.ClickException(f"no organization named {error.args[0]!r}") from None
        except OrganizationExistsError as error:
            raise click.ClickException(
                f"an organization named {error.args[0]!r} already exists"
            ) from None
        except CredentialNotFoundError:
            raise click.ClickException(
                "no credential of this organization matches that token or id"
            ) from None
        except SQLAlchemyError as error:
            cause = str(getattr(error, "orig", None) or error).strip().splitlines()
            raise click.ClickException(
                f"database: {cause[0] if cause else type(error).__name__}"
            ) from None

    return wrapper


def command_settings(**overrides: Any) -> Settings:
    """The settings, with the command's flags (None: not given) over the environment."""
    return load_settings(**overrides)


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
