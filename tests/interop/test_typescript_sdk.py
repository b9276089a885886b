"""The official TypeScript SDK (npm absurd-sdk 0.5.0) on our schema and on upstream
0.5.1's, under the machine's Node. The package comes from the npm registry, installed once
into the test cache (ABSURD_TEST_CACHE, else ~/.cache/absurd-tui-tests). The scenarios are
in typescript/scenarios.cjs; they print what the SDK observed, which must be the same, and
as expected, on both schemas."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from .upstream import cache_dir

SDK = "absurd-sdk@0.5.0"
SCENARIOS = Path(__file__).parent / "typescript" / "scenarios.cjs"

EXPECTED = {
    "idempotent": True,
    "steps": {
        "state": "completed",
        "result": {"a": 2, "b": 20, "headers": {"trace": "t-1"}},
        "checkpoints": ["add", "add#2"],
    },
    "nap_while_sleeping": "sleeping",
    "nap": {"state": "completed", "result": "rested"},
    "waiter_waits": 1,
    "waiter": {"state": "completed", "result": {"by": "ops"}},
    # A replay of a timed-out wait waits again (nothing recorded it) ...
    "replayer_waiting": {"state": "sleeping", "waits": 1},
    "impatient": {"state": "completed", "result": {"timed_out": True}, "waits": 0},
    "replayer": {
        "state": "completed",
        "result": "timeout",
        "seen": ["start", "start", "timeout", "start", "start", "timeout"],
        "checkpoints": [],
    },
    # ... and a second await of the event after its timeout returns at once, leaving no wait.
    "twice": {"state": "completed", "result": {"first": "timeout", "second": None}, "waits": 0},
    "broken_failed": "failed",
    "revived_attempt": 3,
    "broken": {"state": "completed", "result": "fixed"},
    "cancelled": {"state": "cancelled", "result": None},
    "waits_left": 0,
}


@pytest.fixture(scope="session")
def node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the TypeScript SDK scenarios need node and npm, and this machine lacks them")
    prefix = cache_dir() / "npm-absurd-sdk-0.5.0"
    modules = prefix / "node_modules"
    if not (modules / "absurd-sdk" / "package.json").is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), SDK],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert installed.returncode == 0, f"npm install {SDK} failed: {installed.stderr[-2000:]}"
    return modules


def test_typescript_sdk_scenarios(node_modules, db_dsn):
    params = conninfo_to_dict(db_dsn)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({names[key]: str(value) for key, value in params.items() if key in names})
    if "password" in params:
        env["PGPASSWORD"] = str(params["password"])
    ran = subprocess.run(
        ["node", str(SCENARIOS), str(node_modules)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads(ran.stdout) == EXPECTED
