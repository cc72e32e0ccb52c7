"""Every image backend, built in one place from the settings."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from rupali import xmp
from rupali.config import Settings
from rupali.providers.base import (
    REACHABLE_TIMEOUT,
    ModelInfo,
    Provider,
    ProviderError,
    ProviderUnavailable,
    Reachability,
)

log = logging.getLogger(__name__)
# What each provider's images are (C2PA / IPTC digital source type) and who made them, as manifests name it.
_PROVENANCE = {"offline": (xmp.ALGORITHMIC, "Rupali offline sketch generator"),
               "runware": (xmp.TRAINED, "Runware"),
               "a1111": (xmp.TRAINED, "AUTOMATIC1111-compatible server")}


@dataclass(frozen=True)
class ModelChoice:
    """A model as the studio offers it: ``key`` is ``provider:model``."""

    provider: str
    provider_label: str
    info: ModelInfo

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.info.id}"


class ImageProviders:
    """The enabled providers and their models; a provider that cannot list its models is left out for now."""

    def __init__(self, providers: list[Provider]) -> None:
        self._providers = {provider.name: provider for provider in providers}

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageProviders:
        providers: list[Provider] = []
        if settings.offline_generator:
            from rupali.providers.offline import OfflineGenerator

            providers.append(OfflineGenerator())
        if settings.runware_api_key:
            from rupali.providers.runware import RunwareProvider

            providers.append(RunwareProvider(settings))
        if settings.a1111_url:
            from rupali.providers.a1111 import A1111Provider

            providers.append(A1111Provider(settings))
        return cls(providers)

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise ProviderUnavailable("This image service is not enabled on this installation.") from None

    @staticmethod
    def provenance(name: str) -> tuple[str, str]:
        """How an image of this provider is marked: its IPTC digital source type and the software agent's name."""
        return _PROVENANCE.get(name, (xmp.TRAINED, name))

    def service_label(self, name: str) -> str | None:
        """Who made an image, for display: the provider's label (its name once it is switched off), or None for the
        built-in offline generator, whose model name already says so."""
        if name == "offline":
            return None
        provider = self._providers.get(name)
        return provider.label if provider is not None else name

    async def catalogue(self) -> list[ModelChoice]:
        """Every model on offer, AI models first, the offline sketch generator last."""
        results = await asyncio.gather(*(provider.models() for provider in self._providers.values()),
                                       return_exceptions=True)
        choices = []
        for provider, models in zip(self._providers.values(), results, strict=True):
            if isinstance(models, BaseException):
                if not isinstance(models, ProviderError):
                    log.error("listing models of %s failed", provider.name, exc_info=models)
                else:
                    log.warning("%s is unavailable: %s", provider.name, models)
                continue
            choices += [ModelChoice(provider.name, provider.label, info) for info in models]
        return sorted(choices, key=lambda choice: not choice.info.is_ai)

    async def find(self, key: str) -> ModelChoice:
        """The model behind a ``provider:model`` key."""
        provider_name, _, model_id = key.partition(":")
        provider = self.get(provider_name)
        for info in await provider.models():
            if info.id == model_id:
                return ModelChoice(provider.name, provider.label, info)
        raise ProviderUnavailable("This model is no longer offered. Please pick another one.")

    @property
    def names(self) -> list[str]:
        """The enabled providers, in the order they were configured."""
        return list(self._providers)

    async def reachability(self, timeout: float = REACHABLE_TIMEOUT) -> dict[str, Reachability]:
        """Every provider's own reachability check, side by side; none may take longer than ``timeout``."""
        async def check(provider: Provider) -> Reachability:
            try:
                # The provider's own timeouts apply per connect and per read; this bounds the whole check.
                return await asyncio.wait_for(provider.reachable(timeout), timeout)
            except TimeoutError:
                return False, f"no answer within {timeout:g} s"
            except Exception as exc:  # a bug in a check must not take the others (or /healthz) down with it
                log.error("checking %s failed", provider.name, exc_info=exc)
                return False, f"the check itself failed ({type(exc).__name__})"

        results = await asyncio.gather(*(check(provider) for provider in self._providers.values()))
        return dict(zip(self._providers, results, strict=True))

    def reachability_now(self, timeout: float = REACHABLE_TIMEOUT) -> dict[str, Reachability]:
        """:meth:`reachability` for callers without an event loop (a worker thread, the command line).

        It runs on a loop of its own, closed without waiting for its helper threads: ``asyncio.run`` would wait for
        a DNS lookup that hangs long after the check gave up on it."""
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self.reachability(timeout))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
