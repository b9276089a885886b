"""The lease keeper renews often enough for a short lease and is not thrown off by one
slow heartbeat."""

from __future__ import annotations

import logging

from support import wait_until

from absurd_tui.runtime.lease import HEARTBEATS_PER_LEASE, LeaseKeeper
from absurd_tui.sdk.context import RunControl
from absurd_tui.sdk.execution import claim_tasks


def _expires_at(conn, run_id):
    return conn.execute(
        "SELECT claim_expires_at FROM absurd.r_default WHERE run_id = %s", (run_id,)
    ).fetchone()[0]


def test_a_30_s_lease_is_renewed_every_5_s(db_dsn):
    keeper = LeaseKeeper(db_dsn, 30)
    assert HEARTBEATS_PER_LEASE == 6 and keeper.interval == 5


def test_a_heartbeat_held_up_by_a_lock_is_retried_not_dropped(
    client, conn, connect, db_dsn, caplog
):
    client.spawn("slow", {}, queue="default")
    (claimed,) = claim_tasks(conn, "default", "w1", 3, 1)
    keeper = LeaseKeeper(db_dsn, 3)  # heartbeats every 0.5 s, each bounded by 0.5 s
    control = RunControl()
    caplog.set_level(logging.WARNING, logger="absurd_tui.runtime.lease")
    locker = connect(autocommit=False)
    locker.execute("SELECT 1 FROM absurd.r_default WHERE run_id = %s FOR UPDATE", (claimed.run_id,))
    keeper.start()
    try:
        keeper.hold(claimed, control)
        wait_until(
            lambda: any("took longer" in r.getMessage() for r in caplog.records),
            what="a heartbeat to time out",
        )
        assert keeper.holding() == [claimed.run_id] and control.stopped is None
        before = _expires_at(conn, claimed.run_id)
        locker.rollback()
        wait_until(
            lambda: _expires_at(conn, claimed.run_id) > before, what="the lease to be renewed"
        )
        assert keeper.holding() == [claimed.run_id] and control.stopped is None
    finally:
        keeper.stop()
