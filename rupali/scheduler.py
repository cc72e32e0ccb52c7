"""APScheduler in-process, on the web server's event loop; job bodies run in its worker threads."""

from __future__ import annotations

from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rupali import jobs
from rupali.clock import now
from rupali.config import Settings


class JobScheduler:
    """Runs every registered job on its interval, one instance of each at a time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    def start(self) -> None:
        """Start on the running event loop; the heartbeat fires at once, the others after one interval."""
        for job in jobs.JOBS.values():
            # APScheduler reads next_run_time=None as "paused", so it is passed only for the heartbeat.
            first_run = {"next_run_time": now()} if job.name == "heartbeat" else {}
            self._scheduler.add_job(
                jobs.run, IntervalTrigger(seconds=job.interval(self._settings).total_seconds()),
                args=[job.name], kwargs={"trigger": "schedule", "settings": self._settings},
                id=job.name, name=job.name, max_instances=1, coalesce=True, replace_existing=True, **first_run,
            )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)
