"""The running application's stateful services, built in one place: providers, storage, scorer, queue."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from rupali import jobs
from rupali.config import Settings
from rupali.generation_queue import GenerationQueue
from rupali.nsfw import NsfwScorer
from rupali.provenance import ContentCredentials
from rupali.providers import ImageProviders
from rupali.providers.creem import CreemClient
from rupali.revocations import Revocations
from rupali.services import orders, sessions
from rupali.services.credits import CreditHook, FreeGeneration
from rupali.services.ledger import LedgerCredits
from rupali.shared_queue import SharedGenerationQueue
from rupali.storage import MediaStorage
from rupali.storage import from_settings as storage_from_settings
from rupali.techlog import TechnicalLog
from rupali.zips import DownloadTickets

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    providers: ImageProviders
    storage: MediaStorage
    scorer: NsfwScorer
    credits: CreditHook
    queue: GenerationQueue
    downloads: DownloadTickets
    credentials: ContentCredentials
    creem: CreemClient | None = None  # Creem's checkout API, when credit packs are sold (billing = creem)
    technical_log: TechnicalLog | None = None  # the request log's batch writer, unless RUPALI_TECHNICAL_LOG=false
    revocations: Revocations | None = None  # session changes told to the other instances, with RUPALI_REDIS_URL

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        providers = ImageProviders.from_settings(settings)
        storage = storage_from_settings(settings)  # the local folder, or an S3-compatible bucket
        scorer = NsfwScorer()
        credits: CreditHook = FreeGeneration() if settings.billing == "off" else LedgerCredits(settings)
        credentials = ContentCredentials.from_settings(settings)
        if credentials.self_made and settings.is_production:
            log.warning("Content Credentials are signed with this installation's self-made certificate, which no one "
                        "else trusts; set RUPALI_C2PA_CERTIFICATE and RUPALI_C2PA_PRIVATE_KEY to sign as yourself")
        # On PostgreSQL every instance claims from the database; on SQLite the one process queues in memory.
        queue_type = SharedGenerationQueue if settings.shared_queue else GenerationQueue
        queue = queue_type(settings, providers, storage, scorer, credits, credentials)
        creem = CreemClient.from_settings(settings) if settings.billing == "creem" else None
        if settings.billing_enabled:
            orders.install_listeners()  # the balance-alert mail; registering twice keeps one listener
        technical_log = TechnicalLog(settings) if settings.technical_log else None
        revocations = Revocations.from_settings(settings, sessions.forget, sessions.forget_all)
        return cls(settings, providers, storage, scorer, credits, queue, DownloadTickets(), credentials, creem,
                   technical_log, revocations)

    async def start(self) -> None:
        # The media sweep first: what a crash left half-stored is resolved before the queue writes anything new.
        await asyncio.to_thread(jobs.run_at_startup, self.settings)
        if self.revocations is not None:
            self.revocations.start()
            sessions.announce_with(self.revocations.publish)
        await self.queue.start()
        if self.technical_log is not None:
            self.technical_log.start()

    async def stop(self) -> None:
        await self.queue.drain(self.settings.drain_seconds)
        await self.queue.stop()
        if self.revocations is not None:
            sessions.announce_with(None)
            await asyncio.to_thread(self.revocations.stop)
        await self.providers.aclose()
        if self.technical_log is not None:
            await asyncio.to_thread(self.technical_log.stop)  # writes what is still buffered


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the one pages and routes use (called by the web wiring at start-up)."""
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the web app has not been built")
    return _current
