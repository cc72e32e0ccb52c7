"""The provider interface every image backend implements.

A provider turns a validated :class:`GenerationRequest` into images. It declares what it can do
(:class:`ModelInfo`: sizes, image count, img2img, negative prompt, progress), reports progress when its backend
can, and raises a :class:`ProviderError` subclass whose ``user_message`` is a plain sentence the studio shows.
"""

from __future__ import annotations

import io
import os
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol
from urllib.parse import urlsplit

from PIL import Image

ImageFormat = Literal["PNG", "JPEG", "WEBP"]
ProgressCallback = Callable[[float], None]  # fraction done, 0.0 … 1.0
Reachability = tuple[bool, str]  # (usable, one line for the operator: what answered, or what went wrong)
REACHABLE_TIMEOUT = 5.0  # seconds a reachability check may take


@dataclass(frozen=True)
class SizeRule:
    """Which custom sizes a model accepts: both sides within [minimum, maximum] and a multiple of ``multiple``."""

    minimum: int
    maximum: int
    multiple: int

    def allows(self, width: int, height: int) -> bool:
        return all(self.minimum <= side <= self.maximum and side % self.multiple == 0 for side in (width, height))

    def describe(self) -> str:
        return f"{self.minimum}–{self.maximum} pixels per side, in steps of {self.multiple}"


@dataclass(frozen=True)
class ModelInfo:
    """One model a provider offers, with its capabilities."""

    id: str  # the provider's own id: an AIR id for Runware, a checkpoint title for AUTOMATIC1111
    label: str
    version: str
    sizes: tuple[tuple[int, int], ...]  # presets, first is the default
    size_rule: SizeRule
    max_images: int = 4
    img2img: bool = True
    negative_prompt: bool = True
    progress: bool = False
    is_ai: bool = True  # False for the offline sketch generator, so nobody mistakes it for AI
    default_steps: int = 20
    max_steps: int = 100
    default_guidance: float = 7.0
    max_guidance: float = 30.0
    schedulers: tuple[str, ...] = ()
    prompt_min: int = 1  # fewest characters the backend accepts in a prompt (Runware: 4)


@dataclass(frozen=True)
class GenerationRequest:
    """A validated request. ``seed`` is the first image's seed; image *i* uses ``seed + i``."""

    prompt: str
    negative_prompt: str
    model: str  # ModelInfo.id
    width: int
    height: int
    steps: int
    guidance: float
    count: int
    seed: int
    scheduler: str | None = None
    source_image: bytes | None = None  # PNG, metadata already stripped
    strength: float = 0.8  # how far img2img may move away from the source (0 keeps it, 1 ignores it)


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    format: ImageFormat
    seed: int
    width: int
    height: int
    provider_nsfw: bool | None = None  # the provider's own content flag, when it has one


@dataclass(frozen=True)
class GenerationResult:
    images: list[GeneratedImage]
    model_version: str
    cost: Decimal | None = None  # what the provider charged the operator (USD), when it says
    details: dict[str, str] = field(default_factory=dict)


class ErrorKind(StrEnum):
    INVALID_REQUEST = "invalid_request"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    CONTENT_BLOCKED = "content_blocked"
    OUT_OF_BALANCE = "out_of_balance"
    TIMEOUT = "timeout"


class ProviderError(Exception):
    """A classified failure with a sentence for the person who asked for the images."""

    kind: ErrorKind = ErrorKind.UNAVAILABLE
    default_message = "The image service is not available right now. Please try again in a moment."

    def __init__(self, user_message: str | None = None, *, detail: str = "") -> None:
        self.user_message = user_message or self.default_message
        self.detail = detail  # for the operator's log, never shown to the user
        super().__init__(self.user_message + (f" ({detail})" if detail else ""))


class InvalidRequest(ProviderError):
    kind = ErrorKind.INVALID_REQUEST
    default_message = "The image service did not accept these settings."


class ProviderUnavailable(ProviderError):
    kind = ErrorKind.UNAVAILABLE


class RateLimited(ProviderError):
    kind = ErrorKind.RATE_LIMITED
    default_message = "The image service is busy. Please try again in a minute."


class ContentBlocked(ProviderError):
    kind = ErrorKind.CONTENT_BLOCKED
    default_message = "The image service refused this prompt under its content rules. Nothing was charged."


class OutOfBalance(ProviderError):
    kind = ErrorKind.OUT_OF_BALANCE
    default_message = "The image service cannot take new work right now (the operator's account needs attention)."


class ProviderTimeout(ProviderError):
    kind = ErrorKind.TIMEOUT
    default_message = "The image service took too long to answer. Please try again."


class Provider(Protocol):
    """What the generation service needs from a backend."""

    name: str  # "offline", "runware", "a1111": part of every model key shown to users
    label: str

    async def models(self) -> list[ModelInfo]:
        """The models on offer (a provider may ask its backend; callers cache the answer)."""
        ...

    async def generate(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> GenerationResult:
        """Produce ``request.count`` images, calling ``progress`` with the fraction done when the backend says."""
        ...

    async def reachable(self, timeout: float = REACHABLE_TIMEOUT) -> Reachability:
        """Whether the backend answers and accepts our credentials, with one line for the operator; a cheap call
        that generates (and costs) nothing, made on a connection of its own so it may run on any event loop."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


MAX_RESULT_PIXELS = 2048 * 2048  # the largest size any size rule allows: anything bigger is not what was asked for
_PIL_FORMATS: dict[str, ImageFormat] = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WEBP"}


@dataclass(frozen=True)
class CheckedImage:
    format: ImageFormat
    width: int
    height: int


def check_result_image(data: bytes, user_message: str | None = None) -> CheckedImage:
    """Check that a provider's result is a PNG/JPEG/WebP of a sane size, and report its format and size.

    ``verify()`` walks the chunks and checksums without decoding pixels (a fraction of a millisecond); the
    thumbnail step decodes every pixel right after and fails the job if any are missing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(_PIL_FORMATS)) as image:
                width, height = image.size
                if width * height > MAX_RESULT_PIXELS:
                    raise ProviderUnavailable(user_message, detail=f"a result image is {width}x{height}")
                image.verify()
                return CheckedImage(format=_PIL_FORMATS[str(image.format)], width=width, height=height)
    except ProviderUnavailable:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, SyntaxError, ValueError,
            KeyError) as exc:
        raise ProviderUnavailable(user_message, detail=f"a result image does not decode ({type(exc).__name__})"
                                  ) from None


def connection_failure(exc: BaseException) -> str:
    """Why a connection failed, in the system's words ("Connection refused", "Name or service not known").

    httpx wraps the operating system's error in two or three layers that say "All connection attempts failed";
    the innermost error with an errno is the one an operator can act on."""
    reason, seen, current = str(exc) or type(exc).__name__, set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):  # its errno is OpenSSL's, not the system's
            return "TLS failed: " + str(getattr(current, "verify_message", None) or current.reason or current)
        if isinstance(current, OSError) and current.errno is not None:
            reason = os.strerror(current.errno) if current.errno > 0 else (current.strerror or reason)
        current = current.__cause__ or current.__context__
    return reason


def host_and_port(url: str) -> str:
    """``host:port`` of an endpoint, for messages: never its path, nor credentials written into it."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
