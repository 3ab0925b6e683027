import json

import pytest

from config import environment as env


def test_database_url_is_parsed_into_django_settings():
    db = env.parse_database_url("postgresql://crew:p%40ss%2Fword@db.internal:6543/uavcrew?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"]) == ("uavcrew", "crew", "p@ss/word")
    assert (db["HOST"], db["PORT"]) == ("db.internal", "6543")
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_database_url_socket_host_and_defaults():
    db = env.parse_database_url("postgres://crew@/uavcrew?host=/run/postgresql")
    assert db["HOST"] == "/run/postgresql"
    assert db["PORT"] == ""
    assert db["OPTIONS"] == {}


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "postgresql://u:p@localhost:5432/", "sqlite:///x.db"])
def test_database_url_rejects_what_is_not_postgresql(url):
    with pytest.raises(env.ConfigurationError):
        env.parse_database_url(url)


def test_release_defaults_to_dev(tmp_path):
    assert env.read_release(tmp_path)["release"] == "dev"


def test_release_comes_from_the_deploy_tools_file(tmp_path):
    (tmp_path / ".ayna-release.json").write_text(
        json.dumps({"release": "v7", "number": 7, "revision": "abc123", "ref": "main"})
    )
    info = env.read_release(tmp_path)
    assert (info["release"], info["number"], info["revision"]) == ("v7", 7, "abc123")


def test_env_helpers(monkeypatch):
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.delenv("X_MISSING", raising=False)
    assert env.env_list("X_LIST") == ["a", "b", "c"]
    assert env.env_bool("X_BOOL") is True
    assert env.env_int("X_INT", 1) == 42
    assert env.env_str("X_MISSING", "fallback") == "fallback"
    with pytest.raises(env.ConfigurationError):
        env.env_str("X_MISSING", required=True)
