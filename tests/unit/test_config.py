from absurd_tui.config import DSN_ENV, Settings, default_data_dir, resolve_settings
from absurd_tui.db import dsn as dsn_text


def test_explicit_dsn_wins_over_environment():
    s = resolve_settings(dsn="postgresql://a/x", env={DSN_ENV: "postgresql://b/y"})
    assert s.dsn == "postgresql://a/x"
    assert not s.embedded


def test_environment_dsn_used_without_flag():
    s = resolve_settings(env={DSN_ENV: "postgresql://b/y"})
    assert s.dsn == "postgresql://b/y"


def test_no_dsn_means_embedded_in_data_dir(tmp_path):
    s = resolve_settings(data_dir=tmp_path / "d", env={})
    assert s.embedded
    assert s.dsn is None
    assert s.pgdata == (tmp_path / "d" / "pgdata").resolve()


def test_blank_environment_dsn_is_ignored():
    assert resolve_settings(env={DSN_ENV: ""}).embedded


def test_default_data_dir_is_absolute_and_named_for_the_app():
    d = default_data_dir()
    assert d.is_absolute()
    assert d.name == "absurd-tui"


def test_settings_are_frozen():
    s = Settings()
    try:
        s.dsn = "x"  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("Settings must be immutable")


def test_redact_removes_password_in_both_dsn_forms():
    for dsn in (
        "postgresql://alice:s3cret@db.example:6543/app",
        "host=db password=s3cret user=alice",
    ):
        red = dsn_text.redact(dsn)
        assert "s3cret" not in red
        assert "alice" in red


def test_describe_names_host_port_and_database_without_password():
    assert (
        dsn_text.describe("postgresql://alice:s3cret@db.example:6543/app") == "db.example:6543/app"
    )
    assert dsn_text.describe(None) == "embedded"
    assert "s3cret" not in dsn_text.describe("host=db password=s3cret dbname=x")


def test_scrub_hides_password_inside_a_message():
    msg = dsn_text.scrub("auth failed for s3cret", "postgresql://u:s3cret@h/db")
    assert "s3cret" not in msg


def test_redact_keeps_uri_form_and_query_parameters():
    assert (
        dsn_text.redact("postgresql://alice:s3cret@db:5432/app?sslmode=require&password=x")
        == "postgresql://alice@db:5432/app?sslmode=require"
    )
    assert (
        dsn_text.redact("postgresql://postgres:@/postgres?host=/tmp/pg")
        == "postgresql://postgres@/postgres?host=/tmp/pg"
    )
