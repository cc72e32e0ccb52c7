"""The offline sketch generator: deterministic, steered by the prompt's words, honest about not being AI."""

from __future__ import annotations

import dataclasses
import io
import struct
import threading
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from rupali.providers import offline
from rupali.providers.base import GeneratedImage, GenerationRequest, InvalidRequest
from rupali.providers.offline import OfflineGenerator

pytestmark = pytest.mark.sqlite_only

SIZE = 256  # small images keep the suite fast; the painting is the same at any size


BASE = GenerationRequest(prompt="a quiet harbour", negative_prompt="", model="sketch-v1", width=SIZE, height=SIZE,
                         steps=20, guidance=7.0, count=1, seed=1234)


def _request(prompt: str = BASE.prompt, **changes: Any) -> GenerationRequest:
    return dataclasses.replace(BASE, prompt=prompt, **changes)


async def _images(request: GenerationRequest) -> list[GeneratedImage]:
    return (await OfflineGenerator().generate(request)).images


async def _picture(prompt: str = BASE.prompt, **changes: Any) -> Image.Image:
    [image] = await _images(_request(prompt, **changes))
    return _decode(image.data)


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        image.load()
        return image.convert("RGB")


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0 … 255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def _share_of_red(image: Image.Image) -> float:
    """The share of pixels a person would call red: hue within 15° of red, clearly saturated, not near black."""
    hue, saturation, value = image.convert("HSV").split()
    red_hue = hue.point(lambda level: 255 if level < 11 or level > 244 else 0)
    mask = ImageChops.multiply(red_hue, saturation.point(lambda level: 255 if level > 100 else 0))
    mask = ImageChops.multiply(mask, value.point(lambda level: 255 if level > 64 else 0))
    return ImageStat.Stat(mask).mean[0] / 255


def _png(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    """A source image with some structure: a colour field with a white bar across it."""
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).rectangle((0, size[1] // 3, size[0], size[1] // 2), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --- determinism and sensitivity -----------------------------------------------------------------------------------

async def test_same_inputs_give_byte_identical_pngs():
    request = _request("a red sunset over the ocean", negative_prompt="clouds", steps=30, guidance=9.0, count=2)
    first, second = await _images(request), await _images(request)
    assert [image.data for image in first] == [image.data for image in second]


async def test_different_seeds_give_visibly_different_images():
    one, other = await _picture(seed=1), await _picture(seed=2)
    assert _difference(one, other) > 5


async def test_different_prompts_give_different_palettes():
    lake, desert = await _picture("a calm lake"), await _picture("a burning desert")
    assert _difference(lake, desert) > 10
    means = [ImageStat.Stat(image).mean for image in (lake, desert)]
    assert max(abs(a - b) for a, b in zip(*means, strict=True)) > 10


async def test_steps_and_guidance_change_the_image_only_a_little():
    base = await _picture()
    other_seed = _difference(base, await _picture(seed=999))
    for changed in (await _picture(steps=50), await _picture(guidance=12.0)):
        assert 0 < _difference(base, changed) < other_seed


# --- what the request asks for -------------------------------------------------------------------------------------

async def test_size_count_and_seeds_are_honoured():
    request = _request(width=200, height=120, count=3, seed=10)
    images = await _images(request)
    assert [image.seed for image in images] == [10, 11, 12]
    for image in images:
        assert (image.width, image.height, image.format, image.provider_nsfw) == (200, 120, "PNG", None)
        assert _decode(image.data).size == (200, 120)
    # Image i is the seed + i image: asking for seed 11 alone gives the second one again.
    [alone] = await _images(dataclasses.replace(request, count=1, seed=11))
    assert alone.data == images[1].data


async def test_result_names_the_model_and_costs_nothing():
    result = await OfflineGenerator().generate(_request())
    assert (result.model_version, result.cost) == ("sketch-v1", None)


@pytest.mark.parametrize("changes", [{"width": 100}, {"height": 4096}, {"count": 0}, {"count": 5},
                                     {"model": "runware:100@1"}])
async def test_requests_outside_the_model_are_refused(changes):
    with pytest.raises(InvalidRequest):
        await OfflineGenerator().generate(_request(**changes))


# --- the words of the prompt ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_colour_words_lead_the_palette(seed):
    red, green, blue = ImageStat.Stat(await _picture("a painting in red", seed=seed)).mean
    assert red > 1.5 * green and red > 1.5 * blue
    red, green, blue = ImageStat.Stat(await _picture("blue ocean", seed=seed)).mean
    assert blue > 1.2 * green and blue > 1.5 * red


@pytest.mark.parametrize("prompt", ["a red flower", "sunset over the sea", "red and blue circles"])
async def test_a_colour_in_the_negative_prompt_is_left_out(prompt):
    assert _share_of_red(await _picture(prompt)) > 0.1
    assert _share_of_red(await _picture(prompt, negative_prompt="red")) < 0.01


async def test_a_colour_in_both_prompts_is_left_out():
    assert _share_of_red(await _picture("red", negative_prompt="ugly, red, blurry")) < 0.01


# --- img2img -------------------------------------------------------------------------------------------------------

async def test_strength_zero_keeps_the_source():
    source = _png((30, 160, 90), (SIZE, SIZE))
    result = await _picture(source_image=source, strength=0.0)
    assert _difference(result, _decode(source)) < 1


async def test_strength_one_ignores_the_source():
    without = await _images(_request())
    ignored = await _images(_request(source_image=_png((30, 160, 90), (SIZE, SIZE)), strength=1.0))
    assert ignored[0].data == without[0].data


async def test_source_is_fitted_and_blended_deterministically():
    request = _request(source_image=_png((30, 160, 90), (640, 300)), strength=0.5, count=2)
    first, second = await _images(request), await _images(request)
    assert [image.data for image in first] == [image.data for image in second]
    blended, art = _decode(first[0].data), await _picture()
    assert blended.size == (SIZE, SIZE)
    assert 5 < _difference(blended, art) < _difference(await _picture(source_image=request.source_image,
                                                                      strength=0.0), art)


async def test_an_unreadable_source_is_refused():
    with pytest.raises(InvalidRequest):
        await OfflineGenerator().generate(_request(source_image=b"\x89PNG\r\n\x1a\nnot really", strength=0.5))


# --- progress, threads and metadata --------------------------------------------------------------------------------

async def test_progress_rises_to_one():
    seen: list[float] = []
    await OfflineGenerator().generate(_request(count=3), progress=seen.append)
    assert seen == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])


async def test_drawing_runs_off_the_event_loop(monkeypatch):
    threads: list[threading.Thread] = []
    render = offline.render

    def recording(request: GenerationRequest, index: int) -> GeneratedImage:
        threads.append(threading.current_thread())
        return render(request, index)

    monkeypatch.setattr(offline, "render", recording)
    await OfflineGenerator().generate(_request(count=2))
    assert len(threads) == 2 and threading.main_thread() not in threads


async def test_models_say_it_is_not_ai():
    generator = OfflineGenerator()
    assert (generator.name, generator.label) == ("offline", "Offline sketch generator")
    [model] = await generator.models()
    assert (model.id, model.version, model.is_ai) == ("sketch-v1", "1", False)
    assert "not AI" in model.label
    assert model.sizes[0] == (1024, 1024) and all(model.size_rule.allows(*size) for size in model.sizes)
    assert (model.size_rule.minimum, model.size_rule.maximum, model.size_rule.multiple) == (64, 2048, 8)
    assert (model.max_images, model.img2img, model.negative_prompt, model.progress) == (4, True, True, True)
    assert (model.default_steps, model.default_guidance) == (20, 7.0)
    await generator.aclose()


async def test_output_is_a_png_with_no_text_chunks():
    [image] = await _images(_request("portrait of a woman with a flower"))
    data = image.data
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunks.append(kind.decode("ascii"))
        offset += 12 + length
    assert chunks[0] == "IHDR" and chunks[-1] == "IEND"
    assert set(chunks) <= {"IHDR", "IDAT", "IEND"}  # no tEXt, zTXt, iTXt, eXIf or time stamp
    with Image.open(io.BytesIO(data)) as decoded:
        decoded.verify()
