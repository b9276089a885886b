"""The engine-side packages never import Textual: the UI is one client among others."""

import subprocess
import sys

import pytest

HEADLESS = [
    "absurd_tui.db",
    "absurd_tui.sdk",
    "absurd_tui.runtime",
    "absurd_tui.agent",
    "absurd_tui.config",
]


@pytest.mark.parametrize("package", HEADLESS)
def test_package_does_not_import_textual(package):
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    modules = [package]
    if hasattr(pkg, "__path__"):
        modules += [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{package} pulls in Textual: {out.stdout.strip()}"
