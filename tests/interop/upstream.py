"""Upstream Absurd's own schema, for tests that compare against it or upgrade from it.

The SQL comes from upstream's releases on PyPI: each `absurdctl` wheel bundles the
`absurd.sql` of its release and the migrations up to it. The wheels are fetched once with
pip into a cache directory (ABSURD_TEST_CACHE, else ~/.cache/absurd-tui-tests) and read
without being imported. Nothing of upstream's is kept in this repository.

Versions: 0.4.0 and 0.5.1 as released; 0.5.0 is 0.4.0 upgraded by upstream's own 0.4.0 ->
0.5.0 migration (the path `absurdctl migrate` takes); "main" is the 0.5.1 file reporting
"main", which is what upstream's development branch reports between releases.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import psycopg
import pytest

VERSIONS = ("0.4.0", "0.5.0", "0.5.1", "main")


def cache_dir() -> Path:
    configured = os.environ.get("ABSURD_TEST_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "absurd-tui-tests"
    base.mkdir(parents=True, exist_ok=True)
    return base


@cache
def _wheel_constants(release: str) -> dict[str, object]:
    """The module-level constants of absurdctl's wheel for ``release``."""
    target = cache_dir() / f"absurdctl-{release}"
    wheels = sorted(target.glob("absurdctl-*.whl"))
    if not wheels:
        fetched = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--dest", str(target), f"absurdctl=={release}"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = sorted(target.glob("absurdctl-*.whl"))
        if fetched.returncode != 0 or not wheels:
            pytest.skip(
                f"upstream absurdctl {release} could not be fetched from PyPI: "
                f"{fetched.stderr.strip()[-300:]}"
            )
    with zipfile.ZipFile(wheels[0]) as wheel:
        source = wheel.read("absurdctl/__init__.py").decode("utf-8")
    constants: dict[str, object] = {}
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.startswith(("BUNDLED_", "ABSURD_SCHEMA"))
        ):
            constants[node.targets[0].id] = ast.literal_eval(node.value)
    return constants


def schema_sql(release: str) -> str:
    value = _wheel_constants(release)["BUNDLED_SCHEMA_SQL"]
    assert isinstance(value, str)
    return value


def migration_sql(release: str, name: str) -> str:
    migrations = _wheel_constants(release)["BUNDLED_MIGRATIONS"]
    assert isinstance(migrations, dict)
    return migrations[name]


def install(conn: psycopg.Connection, version: str) -> None:
    """Install upstream's schema at ``version`` the way upstream's tools would."""
    if version in ("0.4.0", "0.5.0"):
        available = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'uuid-ossp'"
        ).fetchone()[0]
        if not available:
            pytest.skip(
                f"upstream {version} is installed from 0.4.0, which needs the uuid-ossp "
                "extension, and this PostgreSQL server does not ship it"
            )
    if version == "0.4.0":
        conn.execute(schema_sql("0.4.0"))
    elif version == "0.5.0":
        conn.execute(schema_sql("0.4.0"))
        conn.execute(migration_sql("0.5.1", "0.4.0-0.5.0.sql"))
    elif version == "0.5.1":
        conn.execute(schema_sql("0.5.1"))
    elif version == "main":
        text = schema_sql("0.5.1")
        marker = "select '0.5.1'::text;"
        assert marker in text
        conn.execute(text.replace(marker, "select 'main'::text;"))
    else:
        raise ValueError(f"unknown upstream version {version!r}")
    reported = conn.execute("SELECT absurd.get_schema_version()").fetchone()[0]
    assert reported == version
