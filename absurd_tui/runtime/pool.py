"""The worker pool: N daemon threads claiming and running tasks from one or more queues.

Each thread has its own connection and loops: claim one run (queues in turn), execute
it, repeat; with nothing to claim it sleeps until the listener reports new work or
``poll_interval`` passes (due timers send no notification, so polling stays). A
shared lease keeper heartbeats every run held. On our engine a thread serving one
queue claims its next run in the same call that completes the last one.

When the database goes away a thread backs off and reconnects. If it was running a
task, the run is still claimed by it; after reconnecting it re-checks the claim and
executes the task again from its checkpoints, so committed steps are not repeated
and nothing waits for the lease to expire.

``stop(grace)`` stops claiming at once and gives running tasks ``grace`` seconds to
finish. Runs still held then are handed back (``absurd.release_run``): the same run and
attempt become claimable at once with their checkpoints, so the next worker resumes
after the last committed step, and no attempt is used up. A handler still running is
stopped at its next durable operation; a step it had not committed runs again, as
after a crash. Without our engine's hand-back, runs are left to their lease.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from ..config import DEFAULT_QUEUE
from ..db import tables
from ..db.models import is_internal_step
from ..sdk.context import (
    ClaimedTask,
    RunControl,
    SchemaFeatures,
    TaskContext,
    detect_features,
)
from ..sdk.errors import CANCELLED_SQLSTATE, FAILED_SQLSTATE, TaskAbandoned, sqlstate
from ..sdk.execution import (
    ExecutionResult,
    NextClaim,
    Outcome,
    claim_tasks,
    execute_task,
    unknown_task_delay,
)
from ..sdk.registry import TaskRegistry, default_registry
from ..sdk.validation import validate_queue_name
from .connections import (
    Backoff,
    OutageLog,
    close_quietly,
    describe_error,
    is_connection_error,
    open_connection,
)
from .lease import LeaseKeeper
from .listener import NotifyListener
from .status import WorkerState, WorkerStatus, utcnow

log = logging.getLogger("absurd_tui.runtime.worker")

StatusCallback = Callable[[WorkerStatus], None]
ProgressCallback = Callable[[int], None]
"""Told how many tasks are still running while ``stop()`` waits, each time it changes."""
WrapExecution = Callable[[TaskContext, Callable[[], Any]], Any]

_pool_numbers = itertools.count()


def default_worker_prefix() -> str:
    """``<hostname>:<pid>``, with a suffix for the second and later pools of a process."""
    number = next(_pool_numbers)
    base = f"{socket.gethostname()}:{os.getpid()}"
    return base if number == 0 else f"{base}.{number}"


class WorkerPool:
    def __init__(
        self,
        dsn: str,
        registry: TaskRegistry = default_registry,
        queues: Iterable[str] = (DEFAULT_QUEUE,),
        concurrency: int = 1,
        claim_timeout: int = 30,
        poll_interval: float = 1.0,
        on_status: StatusCallback | None = None,
        worker_id: str | None = None,
        *,
        wrap_task_execution: WrapExecution | None = None,
        listen: bool = True,
        reconnect_max_delay: float = 5.0,
    ) -> None:
        if isinstance(queues, str):
            queues = (queues,)
        names = list(dict.fromkeys(validate_queue_name(q) for q in queues))
        if not names:
            raise ValueError("A worker pool needs at least one queue")
        if concurrency < 0:
            raise ValueError("concurrency must be >= 0")
        if claim_timeout < 0:
            raise ValueError("claim_timeout must be >= 0 (0 means leases never expire)")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        self.dsn = dsn
        self.registry = registry
        self.queues: tuple[str, ...] = tuple(names)
        self.claim_timeout = int(claim_timeout)
        self.poll_interval = float(poll_interval)
        self.worker_prefix = worker_id or default_worker_prefix()
        self.reconnect_max_delay = reconnect_max_delay
        self._on_status = on_status
        self._wrap = wrap_task_execution
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._signals = 0
        self._target = int(concurrency)
        self._paused = False
        self._started = False
        self._stop = threading.Event()
        self._grace_over = threading.Event()
        self._workers: dict[int, _Worker] = {}
        self._statuses: dict[int, WorkerStatus] = {}
        self._missing_queues: set[str] = set()
        self._unknown_tasks: set[str] = set()
        self._keeper = LeaseKeeper(dsn, self.claim_timeout)
        self._listener = NotifyListener(dsn, self.queues, self._on_ready) if listen else None

    # -- control -------------------------------------------------------------------

    def start(self) -> WorkerPool:
        with self._lock:
            if self._started:
                raise RuntimeError("This worker pool was already started")
            self._started = True
            self._keeper.start()
            if self._listener is not None:
                self._listener.start()
            self._spawn_missing_threads()
        log.info(
            "Worker pool %s started: %d thread(s) on queue(s) %s",
            self.worker_prefix,
            self._target,
            ", ".join(repr(q) for q in self.queues),
        )
        return self

    def stop(
        self,
        grace: float = 5.0,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> int:
        """Stop claiming now, give running tasks ``grace`` seconds, hand back the rest.

        ``on_progress`` hears how many tasks are still running, first at once and then
        whenever the number changes. ``end_grace()`` (say, from a second SIGTERM) cuts
        the wait short. ``timeout`` is the former name of ``grace``. Returns how many
        runs were handed back.
        """
        if timeout is not None:
            grace = timeout
        with self._wakeup:
            if self._stop.is_set():
                return 0
            self._stop.set()
            self._wakeup.notify_all()
            workers = list(self._workers.values())
        # stop() may be called from a task or a status callback on a worker thread.
        others = [w for w in workers if w.thread is not threading.current_thread()]
        deadline = time.monotonic() + max(0.0, grace)
        reported: int | None = None
        while True:
            alive = [w for w in others if w.thread.is_alive()]
            busy = sum(1 for w in alive if w.holds_task())
            if on_progress is not None and busy != reported:
                reported = busy
                try:
                    on_progress(busy)
                except Exception:
                    log.exception("The on_progress callback raised; ignoring")
            remaining = deadline - time.monotonic()
            if not alive or remaining <= 0 or self._grace_over.is_set():
                break
            alive[0].thread.join(min(remaining, 0.05))
        handed_back = self._hand_back(workers)
        self._keeper.stop()
        if self._listener is not None:
            self._listener.stop()
        log.info("Worker pool %s stopped", self.worker_prefix)
        return handed_back

    def end_grace(self) -> None:
        """Make a ``stop()`` in progress hand back what is still running now."""
        self._grace_over.set()

    def _hand_back(self, workers: list[_Worker]) -> int:
        """Release every run the threads still hold, after stopping their handlers."""
        held: list[tuple[ClaimedTask, RunControl]] = []
        for worker in workers:
            held.extend(worker.take_held())
        if not held:
            return 0
        handed = 0
        conn: psycopg.Connection | None = None
        try:
            conn = open_connection(self.dsn, f"absurd-tui hand-back {self.worker_prefix}")
            fast = detect_features(conn).fast_paths
            for claimed, control in held:
                # Waits for a write in flight, so the handler's thread writes nothing more.
                if not control.stop(TaskAbandoned("The worker pool stopped"), timeout=5.0):
                    log.warning(
                        "Task %r %s: a database call outlasted the stop; left to its lease",
                        claimed.task_name,
                        claimed.task_id,
                    )
                    continue
                self._keeper.release(claimed.run_id)
                if not fast:
                    log.info(
                        "Task %r %s left to lease expiry (this engine cannot hand runs back)",
                        claimed.task_name,
                        claimed.task_id,
                    )
                    continue
                row = conn.execute(
                    "SELECT absurd.release_run(%s, %s)", (claimed.queue_name, claimed.run_id)
                ).fetchone()
                if row is not None and row[0]:
                    handed += 1
                    log.info(
                        "Handed task %r %s back to queue %r (attempt %d kept)",
                        claimed.task_name,
                        claimed.task_id,
                        claimed.queue_name,
                        claimed.attempt,
                    )
        except psycopg.Error as err:
            log.warning(
                "Could not hand back every run (%s); the rest are reclaimed when their "
                "lease expires",
                describe_error(err, self.dsn),
            )
        finally:
            close_quietly(conn)
        return handed

    def pause(self) -> None:
        """Stop claiming new work; running tasks finish."""
        with self._wakeup:
            self._paused = True
            self._wakeup.notify_all()

    def resume(self) -> None:
        with self._wakeup:
            self._paused = False
            self._wakeup.notify_all()

    def resize(self, concurrency: int) -> None:
        """Change the number of threads; extra threads leave after their current task."""
        if concurrency < 0:
            raise ValueError("concurrency must be >= 0")
        with self._wakeup:
            self._target = int(concurrency)
            for index in [
                i for i in self._statuses if i >= self._target and i not in self._workers
            ]:
                del self._statuses[index]
            if self._started and not self._stop.is_set():
                self._spawn_missing_threads()
            self._wakeup.notify_all()

    def wake(self) -> None:
        """Make idle threads claim now (as a notification would)."""
        self._on_ready(None)

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def running(self) -> bool:
        return self._started and not self._stop.is_set()

    @property
    def concurrency(self) -> int:
        return self._target

    def statuses(self) -> list[WorkerStatus]:
        with self._lock:
            return [self._statuses[i] for i in sorted(self._statuses)]

    def unknown_tasks(self) -> list[str]:
        """Task names this pool claimed but has no handler for (deferred, not failed)."""
        with self._lock:
            return sorted(self._unknown_tasks)

    @property
    def listener_connected(self) -> bool:
        return self._listener is not None and self._listener.connected.is_set()

    # -- internals used by the threads ---------------------------------------------

    def _spawn_missing_threads(self) -> None:
        for index in range(self._target):
            if index not in self._workers:
                worker = _Worker(self, index, f"{self.worker_prefix}:{index}")
                self._workers[index] = worker
                self._statuses[index] = worker.status
                worker.thread.start()

    def _on_ready(self, queue: str | None) -> None:
        """From the listener: work is ready on ``queue`` (None: maybe anywhere)."""
        self._signal(everyone=queue is None)

    def _signal(self, *, everyone: bool) -> None:
        with self._wakeup:
            # One wake-up per notification; a thread that claims something passes the
            # baton on (_claimed_one), so a batch spawned in one transaction (a single
            # notification) still spreads over all idle threads.
            limit = max(1, len(self._workers))
            self._signals = min(self._signals + (limit if everyone else 1), limit)
            if everyone:
                self._wakeup.notify_all()
            else:
                self._wakeup.notify()

    def _claimed_one(self) -> None:
        self._signal(everyone=False)

    def _wait_for_work(self) -> None:
        with self._wakeup:
            if self._signals == 0 and not self._stop.is_set():
                self._wakeup.wait(self.poll_interval)
            if self._signals > 0:
                self._signals -= 1

    def _wait_while_paused(self) -> None:
        with self._wakeup:
            if self._paused and not self._stop.is_set():
                self._wakeup.wait(self.poll_interval)

    def _should_retire(self, worker: _Worker) -> bool:
        with self._lock:
            if worker.index >= self._target:
                self._workers.pop(worker.index, None)
                self._statuses.pop(worker.index, None)
                return True
            return False

    def _set_status(self, worker: _Worker, status: WorkerStatus) -> None:
        with self._lock:
            # A retired thread's last report must not overwrite its successor's.
            if self._workers.get(status.index) is worker:
                self._statuses[status.index] = status
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:
                log.exception("The on_status callback raised; ignoring")

    def _note_missing_queue(self, queue: str) -> None:
        with self._lock:
            first = queue not in self._missing_queues
            self._missing_queues.add(queue)
        if first:
            # Not a warning: a queue may come later by design (the agent's queue appears
            # with the first agent), and the workers pick it up by themselves.
            log.info("Queue %r does not exist (yet); its workers will keep checking", queue)

    def _note_queue_present(self, queue: str) -> None:
        with self._lock:
            if queue in self._missing_queues:
                self._missing_queues.discard(queue)
                log.info("Queue %r now exists", queue)

    def _note_unknown_task(self, claimed: ClaimedTask) -> None:
        with self._lock:
            first = claimed.task_name not in self._unknown_tasks
            self._unknown_tasks.add(claimed.task_name)
        level = logging.WARNING if first else logging.DEBUG
        log.log(
            level,
            "No handler for task %r (task %s, queue %r) in this worker; deferred %d s, not "
            "failed. Load the module that registers it (--tasks).",
            claimed.task_name,
            claimed.task_id,
            claimed.queue_name,
            unknown_task_delay(claimed.run_id),
        )


class _Worker:
    """One worker thread and its connection."""

    def __init__(self, pool: WorkerPool, index: int, worker_id: str) -> None:
        self.pool = pool
        self.index = index
        self.worker_id = worker_id
        self.conn: psycopg.Connection | None = None
        self.features: SchemaFeatures | None = None
        self.status = WorkerStatus(index=index, worker_id=worker_id, state="idle", since=utcnow())
        self.running: tuple[ClaimedTask, RunControl] | None = None
        self.resume: tuple[ClaimedTask, RunControl] | None = None
        # Claimed with the last completion and not started yet.
        self.prefetched: deque[tuple[ClaimedTask, RunControl]] = deque()
        self.next_queue = index % len(pool.queues)
        self.backoff = Backoff(pool._stop, maximum=pool.reconnect_max_delay)
        self.outage = OutageLog(log, f"Worker {worker_id}")
        self.lock = threading.Lock()
        self.thread = threading.Thread(
            target=self._run, name=f"absurd-tui worker {index}", daemon=True
        )

    # -- status --------------------------------------------------------------------

    def _report(self, state: WorkerState, **fields: Any) -> None:
        if state != self.status.state or "task_id" in fields:
            fields.setdefault("since", utcnow())
        if state != "running" and state != "disconnected":
            fields.update(
                task_id=None, task_name=None, queue=None, step=None, run_id=None, attempt=None
            )
        new = self.status.with_changes(state=state, **fields)
        if new != self.status:
            self.status = new
            self.pool._set_status(self, new)

    def _on_step(self, step: str) -> None:
        # Bookkeeping checkpoints (stored file contents) are not the step a user sees:
        # the step that stores them stays the current one.
        if not is_internal_step(step):
            self._report("running", step=step)

    def holds_task(self) -> bool:
        with self.lock:
            return self.running is not None or self.resume is not None

    def take_held(self) -> list[tuple[ClaimedTask, RunControl]]:
        """For stop(): every run this thread holds, which it gives up."""
        with self.lock:
            held = [h for h in (self.running, self.resume) if h is not None]
            held.extend(self.prefetched)
            self.prefetched.clear()
            self.resume = None
        return held

    # -- the loop ------------------------------------------------------------------

    def _run(self) -> None:
        pool = self.pool
        try:
            while not pool._stop.is_set():
                if self.resume is None and pool._should_retire(self):
                    return
                if pool._paused and self.resume is None:
                    # A run claimed with the last completion would sit unheartbeated
                    # through the pause: give it back for another worker.
                    self._release_prefetched()
                    self._report("paused")
                    pool._wait_while_paused()
                    continue
                if not self._ensure_connection():
                    continue
                if self.resume is not None:
                    self._resume_held_run()
                    continue
                with self.lock:
                    next_held = self.prefetched.popleft() if self.prefetched else None
                if next_held is not None:
                    self._execute(*next_held)
                    continue
                claimed = self._claim_next()
                if claimed is not None:
                    pool._claimed_one()
                    self._execute(claimed, RunControl())
                    continue
                if self.conn is not None:
                    self._report("idle")
                    pool._wait_for_work()
        except BaseException:
            log.exception("Worker %s stopped by an unexpected error", self.worker_id)
            raise
        finally:
            self._release_prefetched()
            close_quietly(self.conn)
            self.conn = None
            self._report("stopped")

    def _release_prefetched(self) -> None:
        """Runs claimed with a completion but never started go straight back."""
        with self.lock:
            held = list(self.prefetched)
            self.prefetched.clear()
        for claimed, _control in held:
            try:
                if self.conn is None or self.features is None or not self.features.fast_paths:
                    raise psycopg.OperationalError("no connection to an engine that hands back")
                self.conn.execute(
                    "SELECT absurd.release_run(%s, %s)", (claimed.queue_name, claimed.run_id)
                )
            except psycopg.Error as err:
                log.warning(
                    "Could not hand back task %r %s (%s); it is reclaimed when its lease expires",
                    claimed.task_name,
                    claimed.task_id,
                    describe_error(err, self.pool.dsn),
                )

    def _ensure_connection(self) -> bool:
        if self.conn is not None:
            return True
        try:
            conn = open_connection(self.pool.dsn, f"absurd-tui worker {self.worker_id}")
            self.features = detect_features(conn)
        except psycopg.Error as err:
            self._report("disconnected")
            self.outage.down(describe_error(err, self.pool.dsn), self.backoff.next_delay)
            self.backoff.wait()
            return False
        self.conn = conn
        self.outage.up()
        self.backoff.reset()
        return True

    def _drop_connection(self, err: BaseException) -> None:
        close_quietly(self.conn)
        self.conn = None
        self.outage.down(describe_error(err, self.pool.dsn), self.backoff.next_delay)
        self._report("disconnected")

    def _claim_next(self) -> ClaimedTask | None:
        queues = self.pool.queues
        for offset in range(len(queues)):
            queue = queues[(self.next_queue + offset) % len(queues)]
            assert self.conn is not None
            try:
                claimed = claim_tasks(
                    self.conn, queue, self.worker_id, self.pool.claim_timeout, 1, self.features
                )
            except psycopg.errors.UndefinedTable:
                self.pool._note_missing_queue(queue)
                continue
            except psycopg.Error as err:
                if is_connection_error(err, self.conn):
                    self._drop_connection(err)
                    return None
                log.error(
                    "Claiming from queue %r failed: %s", queue, describe_error(err, self.pool.dsn)
                )
                continue
            self.pool._note_queue_present(queue)
            if claimed:
                self.next_queue = (self.next_queue + offset + 1) % len(queues)
                return claimed[0]
        return None

    def _execute(self, claimed: ClaimedTask, control: RunControl) -> None:
        pool = self.pool
        with self.lock:
            if pool._stop.is_set():
                # Stopping before it began: hand it back untouched (on the way out).
                self.prefetched.appendleft((claimed, control))
                return
            self.running = (claimed, control)
        self._report(
            "running",
            task_id=claimed.task_id,
            task_name=claimed.task_name,
            queue=claimed.queue_name,
            run_id=claimed.run_id,
            attempt=claimed.attempt,
            step=None,
        )
        log.info(
            "Task %r %s started (attempt %d, queue %r)",
            claimed.task_name,
            claimed.task_id,
            claimed.attempt,
            claimed.queue_name,
        )
        pool._keeper.hold(claimed, control)
        started = time.monotonic()
        assert self.conn is not None and self.features is not None
        try:
            result = execute_task(
                self.conn,
                claimed,
                pool.registry,
                claim_timeout=pool.claim_timeout,
                features=self.features,
                worker_id=self.worker_id,
                control=control,
                observer=self._on_step,
                wrap=pool._wrap,
                next_claim=self._next_claim,
            )
        except BaseException as err:
            if isinstance(err, Exception) and is_connection_error(err, self.conn):
                result = ExecutionResult(Outcome.DISCONNECTED, err)
            else:
                # An invariant broke (say fail_run itself was refused): say so loudly and
                # leave the run to its lease rather than guess at its state.
                log.exception(
                    "Task %r %s: recording its outcome failed; leaving it to lease expiry",
                    claimed.task_name,
                    claimed.task_id,
                )
                result = ExecutionResult(Outcome.ABANDONED, err)
        finally:
            with self.lock:
                self.running = None
        elapsed = time.monotonic() - started
        if result.outcome is Outcome.DISCONNECTED and control.stopped is None:
            with self.lock:
                self.resume = (claimed, control)
            log.info(
                "Task %r %s interrupted by a lost connection; resuming it after reconnecting",
                claimed.task_name,
                claimed.task_id,
            )
            self._drop_connection(result.error or RuntimeError("connection lost"))
            return
        pool._keeper.release(claimed.run_id)
        if result.outcome is Outcome.DISCONNECTED:
            self._drop_connection(result.error or RuntimeError("connection lost"))
        self._log_outcome(claimed, result, elapsed)
        if result.claimed:
            with self.lock:
                self.prefetched.extend((c, RunControl()) for c in result.claimed)
            pool._claimed_one()

    def _next_claim(self) -> NextClaim | None:
        """Claim the next run with this completion, from the queue whose turn it is, as
        the loop would right after; not when stopping, pausing or retiring."""
        pool = self.pool
        if pool._stop.is_set() or pool._paused or self.index >= pool._target:
            return None
        queue = pool.queues[self.next_queue]
        # That queue was just polled: an empty answer moves the turn on, as a claim would.
        self.next_queue = (self.next_queue + 1) % len(pool.queues)
        return NextClaim(queue, self.worker_id, pool.claim_timeout, 1)

    def _log_outcome(self, claimed: ClaimedTask, result: ExecutionResult, elapsed: float) -> None:
        name, task_id = claimed.task_name, claimed.task_id
        outcome = result.outcome
        if outcome is Outcome.FAILED or outcome is Outcome.MISCONFIGURED:
            err = result.error
            log.info(
                "Task %r %s failed on attempt %d after %.2f s: %s: %r",
                name,
                task_id,
                claimed.attempt,
                elapsed,
                type(err).__name__,
                str(err),
            )
            if err is not None:
                log.debug("Traceback of task %s", task_id, exc_info=err)
        elif outcome is Outcome.DEFERRED:
            self.pool._note_unknown_task(claimed)
        elif outcome is Outcome.COMPLETED:
            log.info("Task %r %s completed in %.2f s", name, task_id, elapsed)
        elif outcome is Outcome.SUSPENDED:
            log.info(
                "Task %r %s suspended after %.2f s (sleeping or awaiting an event)",
                name,
                task_id,
                elapsed,
            )
        elif outcome is Outcome.CANCELLED:
            log.info("Task %r %s was cancelled; stopped", name, task_id)
        elif outcome is Outcome.LOST:
            log.info("Task %r %s: this run lost its claim; stopped quietly", name, task_id)
        else:
            log.info("Task %r %s abandoned (%s)", name, task_id, outcome.value)

    def _resume_held_run(self) -> None:
        """After reconnecting: if the run is still ours, execute it again."""
        assert self.resume is not None and self.conn is not None
        claimed, control = self.resume
        if control.stopped is not None:
            self._forget_resume(claimed, "stopped while disconnected")
            return
        try:
            if self.pool.claim_timeout > 0:
                self.conn.execute(
                    "SELECT absurd.extend_claim(%s, %s, %s)",
                    (claimed.queue_name, claimed.run_id, self.pool.claim_timeout),
                )
            else:
                row = self.conn.execute(
                    psycopg.sql.SQL("SELECT state FROM {} WHERE run_id = %s").format(
                        tables.runs(claimed.queue_name)
                    ),
                    (claimed.run_id,),
                ).fetchone()
                if row is None or row[0] != "running":
                    self._forget_resume(claimed, "it is no longer running")
                    return
        except psycopg.Error as err:
            if is_connection_error(err, self.conn):
                self._drop_connection(err)
                return
            code = sqlstate(err)
            reason = {
                CANCELLED_SQLSTATE: "it was cancelled",
                FAILED_SQLSTATE: "its claim was lost (the run was failed and retried)",
            }.get(code or "", describe_error(err, self.pool.dsn))
            self._forget_resume(claimed, reason)
            return
        with self.lock:
            self.resume = None
        log.info("Resuming task %r %s after reconnecting", claimed.task_name, claimed.task_id)
        self._execute(claimed, control)

    def _forget_resume(self, claimed: ClaimedTask, reason: str) -> None:
        with self.lock:
            self.resume = None
        self.pool._keeper.release(claimed.run_id)
        log.info("Not resuming task %r %s: %s", claimed.task_name, claimed.task_id, reason)
        self._report("idle")
