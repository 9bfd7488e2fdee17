"""Configuration: defaults, then HUB_SCIM_* variables, then explicit overrides."""

from __future__ import annotations

import dataclasses

import pytest

from connector.settings import (
    Settings,
    SettingsError,
    default_database_url,
    load_settings,
    replace_settings,
    sqlite_file,
)
from scim.settings import MIB


def test_defaults_serve_sqlite_in_the_users_data_directory_on_localhost() -> None:
    settings = load_settings({"XDG_DATA_HOME": "/srv/data"})

    assert settings.database_url == "sqlite:////srv/data/hub-scim/hub-scim.db"
    assert settings.is_sqlite
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.scim.max_payload_bytes == MIB
    assert settings.public_base_url is None
    assert settings.scim_token_ttl_seconds == 0


def test_the_default_database_falls_back_to_dot_local_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", "/home/it")

    assert default_database_url({}) == "sqlite:////home/it/.local/share/hub-scim/hub-scim.db"


def test_environment_variables_override_defaults() -> None:
    settings = load_settings(
        {
            "HUB_SCIM_DATABASE_URL": "postgresql://hub@db/hub",
            "HUB_SCIM_PORT": "9000",
            "HUB_SCIM_PUBLIC_BASE_URL": "https://scim.example.com/",
            "HUB_SCIM_MAX_PAYLOAD_BYTES": " 2097152 ",
        }
    )

    assert settings.database_url == "postgresql://hub@db/hub"
    assert not settings.is_sqlite
    assert settings.port == 9000
    assert settings.public_base_url == "https://scim.example.com"
    assert settings.scim.max_payload_bytes == 2 * MIB


def test_the_scim_limits_are_the_scim_layers_settings_naming_this_realm() -> None:
    settings = load_settings({"HUB_SCIM_MAX_PAGE_SIZE": "500"}, bulk_max_operations=7)

    assert settings.scim.max_page_size == 500
    assert settings.scim.bulk_max_operations == 7
    assert settings.scim.default_page_size == 100
    assert settings.scim.www_authenticate == 'Bearer realm="hub-scim"'
    assert replace_settings(settings, max_page_size=600).scim.max_page_size == 600


def test_explicit_overrides_beat_the_environment_and_none_means_not_given() -> None:
    environ = {"HUB_SCIM_PORT": "9000", "HUB_SCIM_HOST": "0.0.0.0"}  # noqa: S104

    settings = load_settings(environ, port=9100, host=None)

    assert settings.port == 9100
    assert settings.host == "0.0.0.0"  # noqa: S104


def test_an_empty_optional_variable_means_unset() -> None:
    assert load_settings({"HUB_SCIM_PUBLIC_BASE_URL": ""}).public_base_url is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HUB_SCIM_PORT": "eighty"}, "HUB_SCIM_PORT must be an integer"),
        ({"HUB_SCIM_PORT": "70000"}, "HUB_SCIM_PORT must be between 1 and 65535"),
        ({"HUB_SCIM_WORKERS": "0"}, "HUB_SCIM_WORKERS must be at least 1"),
        ({"HUB_SCIM_DATABASE_URL": "mysql://x/y"}, "must be a sqlite:/// or postgresql://"),
        ({"HUB_SCIM_DATABASE_URL": "not a url"}, "HUB_SCIM_DATABASE_URL is not a database URL"),
        ({"HUB_SCIM_PUBLIC_BASE_URL": "scim.example.com"}, "must start with http"),
        ({"HUB_SCIM_LOG_LEVEL": "chatty"}, "HUB_SCIM_LOG_LEVEL is not a log level"),
        ({"HUB_SCIM_SQLITE_SYNCHRONOUS": "off"}, "HUB_SCIM_SQLITE_SYNCHRONOUS must be one of"),
        ({"HUB_SCIM_MAX_PAGE_SIZE": "many"}, "HUB_SCIM_MAX_PAGE_SIZE must be an integer"),
        ({"HUB_SCIM_MAX_PAGE_SIZE": "0"}, "HUB_SCIM_MAX_PAGE_SIZE must be at least 1"),
        ({"HUB_SCIM_MAX_PAYLOAD_BYTES": "100"}, "HUB_SCIM_MAX_PAYLOAD_BYTES must be at least 1024"),
        (
            {"HUB_SCIM_MAX_QUERY_STRING_BYTES": "8190"},
            "HUB_SCIM_MAX_QUERY_STRING_BYTES must be at most",
        ),
        (
            {"HUB_SCIM_DEFAULT_PAGE_SIZE": "500", "HUB_SCIM_MAX_PAGE_SIZE": "100"},
            "HUB_SCIM_DEFAULT_PAGE_SIZE (500) must not exceed",
        ),
    ],
)
def test_a_bad_value_stops_start_up_with_a_message_naming_the_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ)


def test_an_unknown_override_is_an_error() -> None:
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings({}, max_payload=5)


def test_an_unknown_variable_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    load_settings({"HUB_SCIM_MAX_PAYLOAD": "5"})

    assert "HUB_SCIM_MAX_PAYLOAD" in caplog.text


def test_settings_are_frozen_and_checked_on_every_construction() -> None:
    settings = load_settings({})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(SettingsError):
        dataclasses.replace(settings, port=0)
    with pytest.raises(SettingsError, match="HUB_SCIM_MAX_PAGE_SIZE must be at least 1"):
        replace_settings(settings, max_page_size=0)
    with pytest.raises(SettingsError, match="must not be empty"):
        Settings()


def test_the_sqlite_file_behind_a_url() -> None:
    assert str(sqlite_file("sqlite:////var/lib/hub.db")) == "/var/lib/hub.db"
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("postgresql://db/hub") is None
