"""Huey as the executor of jobs (never their source of truth; see sync.jobs).

One SQLite file beside (not inside) the state store by default, because SQLite has a single
writer and the queue's polling must not contend with webhook inserts; PostgresHuey or
PriorityRedisHuey when ``TANDEM_QUEUE_URL`` names a server. Huey delivers at most once
(https://huey.readthedocs.io/en/latest/consumer.html): a message lost with a killed consumer is
found again by the reconciler from the jobs table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from huey import Huey, PostgresHuey, PriorityRedisHuey, SqliteHuey

log = logging.getLogger("tandem.queue")

RUN_JOB = "tandem.run_job"


def make_huey(queue_url: str | None, var_dir: Path, *, immediate: bool = False) -> Huey:
    """The queue named by ``queue_url`` (None: ``var/queue.db``).

    Raises ValueError for an unsupported URL scheme.
    """
    if immediate:
        # Runs tasks inline in the caller; used by unit tests of the job flow only.
        return Huey("tandem", immediate=True)
    if not queue_url:
        var_dir.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("tandem", filename=str(var_dir / "queue.db"))
    scheme = urlsplit(queue_url).scheme
    if scheme == "sqlite":
        path = Path(urlsplit(queue_url).path.removeprefix("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("tandem", filename=str(path))
    if scheme in ("postgresql", "postgres"):
        return PostgresHuey("tandem", dsn=queue_url)
    if scheme in ("redis", "rediss"):
        # The priority variant so live changes overtake backfill pages in the queue.
        return PriorityRedisHuey("tandem", url=queue_url)
    raise ValueError(
        f"unsupported queue URL scheme {scheme!r}: use sqlite://, postgresql:// or redis://"
    )


class JobQueue:
    """Hands job ids to Huey; the worker side registers the function that runs them."""

    def __init__(self, huey: Huey, run: Callable[[int], None] | None = None) -> None:
        self.huey = huey
        self._run = run

        def run_job(job_id: int) -> None:
            if self._run is None:
                raise RuntimeError("this process only enqueues jobs; run `flask worker`")
            self._run(job_id)

        self._task = huey.task(name=RUN_JOB)(run_job)

        closing = threading.Lock()

        @huey.on_shutdown()
        def close_storage() -> None:
            # Each consumer thread of PostgresHuey keeps its own LISTEN connection; close it
            # when the thread stops instead of leaving it to the garbage collector. Storage
            # close() is not thread-safe, and every worker thread runs this hook.
            with closing:
                huey.storage.close()

    def bind(self, run: Callable[[int], None]) -> None:
        """Set the executor (the worker process does this before consuming)."""
        self._run = run

    def submit(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> None:
        """Enqueue a job for execution. Huey priorities run high first, ours run 0 first."""
        # Huey runs higher priorities first; our priority 0 (live changes) is the most urgent.
        self._task(job_id, priority=10 - priority, delay=delay if delay > 0 else None)

    def submit_quietly(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> bool:
        """Like submit, but a queue outage is logged, not raised: the job row is already
        committed and the reconciler will enqueue it. Used on the webhook hot path."""
        try:
            self.submit(job_id, delay=delay, priority=priority)
        except Exception:
            log.warning(
                "could not enqueue job %s; the reconciler will pick it up", job_id, exc_info=True
            )
            return False
        return True
