"""Image files: thumbnails, and the A1111 ``parameters`` text chunk on downloaded PNGs.

Thumbnails use Pillow's fast paths: ``draft`` lets the JPEG decoder skip work at reduced scale and ``reduce``
shrinks by an integer factor in one cheap pass before the final filtered resize.
"""

from __future__ import annotations

import io

from PIL import Image as PILImage

from rupali import xmp
from rupali.models import Generation, Image

THUMBNAIL_SIZE = 384


def thumbnail(data: bytes, size: int = THUMBNAIL_SIZE) -> bytes:
    """A WebP no larger than ``size`` on its longest side, without metadata."""
    with PILImage.open(io.BytesIO(data)) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale directly
        factor = max(1, min(image.width, image.height) // size)
        working = image.reduce(factor) if factor > 1 else image.copy()  # a cheap box-filter pass first
    working.thumbnail((size, size), PILImage.Resampling.BILINEAR)
    if working.mode not in {"RGB", "RGBA"}:
        working = working.convert("RGBA" if "A" in working.getbands() else "RGB")
    buffer = io.BytesIO()
    working.save(buffer, "WEBP", quality=80, method=0)  # method 0: fastest encoder, visually the same at 384 px
    return buffer.getvalue()


def infotext(generation: Generation, image: Image, *, model_version: str | None = None) -> str:
    """The AUTOMATIC1111 "infotext" the ecosystem's tools read (PNG Info, Civitai, image viewers).

    ``model_version`` stands in for the generation's while its result is being stored (not yet recorded)."""
    model_version = model_version or generation.model_version
    lines = [generation.prompt]
    if generation.negative_prompt:
        lines.append(f"Negative prompt: {generation.negative_prompt}")
    fields = [("Steps", str(generation.steps))]
    if generation.scheduler:
        fields.append(("Sampler", generation.scheduler))
    fields += [("CFG scale", f"{generation.guidance:g}"), ("Seed", str(image.seed)),
               ("Size", f"{image.width}x{image.height}"), ("Model", generation.model_label or generation.model)]
    if model_version:
        fields.append(("Model hash", model_version))
    if generation.strength is not None:
        fields.append(("Denoising strength", f"{generation.strength:g}"))
    lines.append(", ".join(f"{key}: {_value(value)}" for key, value in fields))
    return "\n".join(lines)


def png_with_parameters(data: bytes, parameters: str | None) -> bytes:
    """The PNG with every text/EXIF chunk removed and, unless ``parameters`` is None, a ``parameters`` chunk
    (images stored before signing; signed ones are served as stored)."""
    return xmp.png(data, source_type=None, parameters=parameters)


def _value(value: str) -> str:
    # A1111 quotes values that contain the separators of its own format.
    return f'"{value}"' if ("," in value or ":" in value) and not value.startswith('"') else value
