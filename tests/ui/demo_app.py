"""The snapshot tests' app: fixed data, frozen clock, pinned theme, no NOTIFY listener.

``python -m tests.ui.demo_app`` runs it in a terminal, to look at it by hand.
"""

from __future__ import annotations

from absurd_tui.ui.app import AbsurdApp
from absurd_tui.ui.logbook import Logbook

from .fakes import MONOTONIC, NOW, FakeWorkers, StaticSource


def make_app(
    *,
    down: bool = False,
    broken: bool = False,
    workers: bool = True,
    logbook: Logbook | None = None,
) -> AbsurdApp:
    app = AbsurdApp(
        StaticSource(down=down, broken=broken),
        workers=FakeWorkers() if workers else None,
        worker_queues=("default", "emails", "agents") if workers else (),
        refresh=3600,
        listen=False,
        clock=lambda: NOW,
        monotonic=lambda: MONOTONIC,
        theme="textual-dark",
        logbook=logbook,
    )
    return app


if __name__ == "__main__":
    make_app().run()
