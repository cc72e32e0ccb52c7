"""The A1111 provider against a real HTTP server speaking the AUTOMATIC1111 API (``tests/utils/a1111_server.py``).

Nothing of the provider is mocked: every test goes through httpx, a loopback socket and the server's handlers.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from rupali.config import Settings
from rupali.providers.a1111 import (
    BAD_CREDENTIALS,
    MODEL_GONE,
    NO_API,
    OUT_OF_MEMORY,
    SD1_PRESETS,
    SDXL_PRESETS,
    SIZE_RULE,
    UNREACHABLE,
    A1111Provider,
)
from rupali.providers.base import (
    ErrorKind,
    GenerationRequest,
    InvalidRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from tests.utils.a1111_server import SAMPLERS, SD15, SDXL, LoopbackA1111, running_server

pytestmark = pytest.mark.sqlite_only

TXT2IMG = "/sdapi/v1/txt2img"
IMG2IMG = "/sdapi/v1/img2img"


@pytest.fixture
def server() -> Iterator[LoopbackA1111]:
    with running_server() as running:
        yield running


@pytest.fixture
async def provider(server: LoopbackA1111) -> AsyncIterator[A1111Provider]:
    provider = A1111Provider(Settings(a1111_url=server.url), poll_interval=0.05)
    yield provider
    await provider.aclose()


def generation(**overrides: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "prompt": "a lighthouse at dusk", "negative_prompt": "blurry", "model": SDXL["title"], "width": 832,
        "height": 1216, "steps": 20, "guidance": 6.5, "count": 2, "seed": 1234, "scheduler": "DPM++ 2M",
    }
    return GenerationRequest(**{**values, **overrides})


def png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- models ---------------------------------------------------------------------------------------------------------


async def test_models_are_listed_from_the_server(provider: A1111Provider, server: LoopbackA1111):
    models = await provider.models()

    assert [(model.id, model.label, model.version) for model in models] == [
        (SDXL["title"], "sd_xl_base_1.0", "31e35c80fc"), (SD15["title"], "v1-5-pruned-emaonly", "6ce0161689")]
    sdxl, sd15 = models
    assert sdxl.sizes == SDXL_PRESETS and sdxl.sizes[0] == (1024, 1024)
    assert sd15.sizes == SD1_PRESETS and sd15.sizes[0] == (512, 512)
    for model in models:
        assert model.schedulers == SAMPLERS
        assert model.size_rule == SIZE_RULE and model.size_rule.describe() == "64–2048 pixels per side, in steps of 8"
        assert all(model.size_rule.allows(*size) for size in model.sizes)
        assert (model.max_images, model.img2img, model.negative_prompt, model.progress, model.is_ai) == (
            4, True, True, True, True)


async def test_models_are_cached_for_the_ttl(server: LoopbackA1111):
    cached = A1111Provider(Settings(a1111_url=server.url))
    uncached = A1111Provider(Settings(a1111_url=server.url), models_ttl=0)
    try:
        await asyncio.gather(cached.models(), cached.models())
        await cached.models()
        assert len(server.requests_to("/sd-models")) == 1

        await uncached.models()
        await uncached.models()
        assert len(server.requests_to("/sd-models")) == 3
    finally:
        await cached.aclose()
        await uncached.aclose()


async def test_a_server_without_samplers_still_offers_its_models(provider: A1111Provider, server: LoopbackA1111):
    server.respond_next(500, {"error": "RuntimeError"}, path="/samplers")

    models = await provider.models()

    assert [model.schedulers for model in models] == [(), ()]


async def test_a_server_without_models_says_so(provider: A1111Provider, server: LoopbackA1111):
    server.models = []

    with pytest.raises(ProviderUnavailable) as caught:
        await provider.models()
    assert caught.value.user_message == "The image server has no models installed."


# -- generation -----------------------------------------------------------------------------------------------------


async def test_txt2img_returns_the_images_seeds_and_model_version(provider: A1111Provider, server: LoopbackA1111):
    result = await provider.generate(generation())

    assert [(image.format, image.width, image.height, image.seed, image.provider_nsfw) for image in result.images] == [
        ("PNG", 832, 1216, 1234, None), ("PNG", 832, 1216, 1235, None)]
    for image in result.images:
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert (decoded.format, decoded.size) == ("PNG", (832, 1216))
    assert result.model_version == "31e35c80fc"
    assert result.cost is None
    assert result.details == {"model_name": "sd_xl_base_1.0", "sampler": "DPM++ 2M"}

    [sent] = server.generations
    assert sent["override_settings"] == {"sd_model_checkpoint": SDXL["title"]}
    assert sent["override_settings_restore_afterwards"] is True
    assert {key: sent[key] for key in ("prompt", "negative_prompt", "seed", "steps", "cfg_scale", "width", "height",
                                       "batch_size", "n_iter", "sampler_name", "send_images", "save_images")} == {
        "prompt": "a lighthouse at dusk", "negative_prompt": "blurry", "seed": 1234, "steps": 20, "cfg_scale": 6.5,
        "width": 832, "height": 1216, "batch_size": 2, "n_iter": 1, "sampler_name": "DPM++ 2M", "send_images": True,
        "save_images": False}
    assert "init_images" not in sent and "denoising_strength" not in sent
    assert server.requests_to(IMG2IMG) == []


async def test_the_chosen_model_is_used_for_this_job_only(provider: A1111Provider, server: LoopbackA1111):
    result = await provider.generate(generation(model=SD15["title"], width=512, height=512, count=1, scheduler=None))

    assert result.model_version == "6ce0161689"
    assert server.current_model == SDXL["title"]  # the server's default is untouched
    assert "sampler_name" not in server.generations[0]


async def test_seeds_come_from_the_info_json(provider: A1111Provider, server: LoopbackA1111):
    server.info_overrides = {"all_seeds": [7, 99]}
    assert [image.seed for image in (await provider.generate(generation())).images] == [7, 99]

    server.info_overrides = {"all_seeds": "not a list"}
    assert [image.seed for image in (await provider.generate(generation())).images] == [1234, 1235]


async def test_an_unreadable_info_costs_only_seeds_and_version(provider: A1111Provider, server: LoopbackA1111):
    encoded = base64.b64encode(png(64, 64)).decode("ascii")
    server.respond_next(200, {"images": [encoded, encoded], "parameters": {}, "info": "{not json"}, path=TXT2IMG)

    result = await provider.generate(generation(width=64, height=64))

    assert [(image.seed, image.width) for image in result.images] == [(1234, 64), (1235, 64)]
    assert result.model_version == SDXL["title"]


async def test_img2img_sends_the_source_image_and_strength(provider: A1111Provider, server: LoopbackA1111):
    source = png()

    result = await provider.generate(generation(source_image=source, strength=0.35, count=1, width=512, height=768))

    [sent] = server.generations
    assert server.requests_to(TXT2IMG) == []
    assert sent["init_images"] == [base64.b64encode(source).decode("ascii")]
    assert sent["denoising_strength"] == 0.35
    assert sent["override_settings"] == {"sd_model_checkpoint": SDXL["title"]}
    assert [(image.width, image.height, image.seed) for image in result.images] == [(512, 768, 1234)]


async def test_progress_rises_while_the_server_works_and_ends_at_one(provider: A1111Provider,
                                                                     server: LoopbackA1111):
    server.work_seconds = 0.6
    values: list[float] = []

    await provider.generate(generation(), values.append)

    assert len(values) >= 4, values
    assert all(0.0 <= value <= 1.0 for value in values)
    assert values == sorted(set(values)), "progress must only move forwards"
    assert values[-1] == 1.0 and values[-2] < 1.0
    polls = server.requests_to("/progress")
    assert polls and all(poll.query == {"skip_current_image": "true"} for poll in polls)


async def test_a_failing_progress_callback_does_not_fail_the_generation(provider: A1111Provider,
                                                                        server: LoopbackA1111):
    server.work_seconds = 0.2

    def broken(fraction: float) -> None:
        raise RuntimeError("the page went away")

    result = await provider.generate(generation(count=1), broken)

    assert len(result.images) == 1


async def test_sizes_and_counts_outside_the_rules_never_reach_the_server(provider: A1111Provider,
                                                                         server: LoopbackA1111):
    for request in (generation(width=1004), generation(height=4096), generation(count=5), generation(count=0)):
        with pytest.raises(InvalidRequest):
            await provider.generate(request)
    assert server.generations == []


async def test_a_model_the_server_no_longer_has_is_not_mislabelled(provider: A1111Provider, server: LoopbackA1111):
    await provider.models()
    server.models = [SDXL]  # the operator removed SD 1.5: A1111 silently falls back to SDXL

    with pytest.raises(ProviderUnavailable) as caught:
        await provider.generate(generation(model=SD15["title"]))

    assert caught.value.user_message == MODEL_GONE
    assert [model.id for model in await provider.models()] == [SDXL["title"]]  # the stale list was dropped


# -- authentication -------------------------------------------------------------------------------------------------


async def test_basic_auth_is_sent_when_configured():
    with running_server(username="operator", password="s3cret-pass") as server:
        provider = A1111Provider(Settings(a1111_url=server.url, a1111_username="operator",
                                          a1111_password="s3cret-pass"))
        try:
            assert len(await provider.models()) == 2
            await provider.generate(generation(count=1))
        finally:
            await provider.aclose()
        expected = "Basic " + base64.b64encode(b"operator:s3cret-pass").decode("ascii")
        assert server.requests
        assert all(request.headers.get("Authorization") == expected for request in server.requests)


@pytest.mark.parametrize("credentials", [{}, {"a1111_username": "operator", "a1111_password": "wrong-pass"}])
async def test_refused_credentials_are_unavailable_without_leaking_them(credentials: dict[str, str]):
    with running_server(username="operator", password="s3cret-pass") as server:
        provider = A1111Provider(Settings(a1111_url=server.url, **credentials))
        try:
            for call in (provider.models(), provider.generate(generation())):
                with pytest.raises(ProviderUnavailable) as caught:
                    await call
                assert caught.value.user_message == BAD_CREDENTIALS
                assert "the image server refused the operator's credentials" in caught.value.user_message
                assert "wrong-pass" not in str(caught.value) and "s3cret" not in str(caught.value)
        finally:
            await provider.aclose()


# -- errors ---------------------------------------------------------------------------------------------------------


async def test_a_validation_error_is_an_invalid_request(provider: A1111Provider, server: LoopbackA1111):
    server.respond_next(422, {"detail": [{"loc": ["body", "cfg_scale"], "msg": "value is not a valid float",
                                          "type": "type_error.float"}]}, path=TXT2IMG)

    with pytest.raises(InvalidRequest) as caught:
        await provider.generate(generation())

    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert caught.value.user_message == "The image server did not accept the cfg scale setting."


async def test_an_unknown_sampler_is_an_invalid_request(provider: A1111Provider, server: LoopbackA1111):
    with pytest.raises(InvalidRequest) as caught:
        await provider.generate(generation(scheduler="Heun Karras Deluxe"))

    assert caught.value.user_message == "The image server did not accept these settings: sampler not found."


async def test_a_server_started_without_api_says_so(provider: A1111Provider, server: LoopbackA1111):
    server.api_enabled = False

    for call in (provider.models(), provider.generate(generation())):
        with pytest.raises(ProviderUnavailable) as caught:
            await call
        assert caught.value.user_message == NO_API and "--api" in caught.value.user_message


async def test_a_server_error_is_unavailable(provider: A1111Provider, server: LoopbackA1111):
    server.respond_next(500, {"error": "RuntimeError", "detail": "", "body": "", "errors": "boom"}, path=TXT2IMG)

    with pytest.raises(ProviderUnavailable) as caught:
        await provider.generate(generation())

    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert "boom" in caught.value.detail and "boom" not in caught.value.user_message


async def test_running_out_of_gpu_memory_suggests_smaller_settings(provider: A1111Provider,
                                                                   server: LoopbackA1111):
    server.respond_next(500, {"error": "OutOfMemoryError", "detail": "", "body": "",
                              "errors": "CUDA out of memory. Tried to allocate 2.00 GiB"}, path=TXT2IMG)

    with pytest.raises(InvalidRequest) as caught:
        await provider.generate(generation())

    assert caught.value.user_message == OUT_OF_MEMORY


# Spelled out rather than imported: the test is about the sentence the person reads, not a constant's name.
UNREADABLE_ANSWER = "The image server sent an answer the studio could not read. Please try again in a moment."
NO_IMAGES = "The image server finished without returning any images. Please try again."


@pytest.mark.parametrize(("answer", "message"), [
    pytest.param({"raw": b'{"images": ["iVBOR'}, UNREADABLE_ANSWER, id="malformed-json"),
    pytest.param({"body": {"images": [], "info": "{}"}}, NO_IMAGES, id="no-images"),
    pytest.param({"body": {"info": "{}"}}, UNREADABLE_ANSWER, id="no-images-list"),
    pytest.param({"body": {"images": ["%%% not base64 %%%"], "info": "{}"}}, UNREADABLE_ANSWER, id="not-base64"),
    pytest.param({"body": {"images": [base64.b64encode(b"GIF89a not a png").decode()], "info": "{}"}},
                 UNREADABLE_ANSWER, id="not-an-image"),
    pytest.param({"body": {"images": [base64.b64encode(png()[:60]).decode()], "info": "{}"}}, UNREADABLE_ANSWER,
                 id="truncated-png"),
])
async def test_an_unusable_answer_is_unavailable(provider: A1111Provider, server: LoopbackA1111,
                                                 answer: dict[str, Any], message: str):
    server.respond_next(200, answer.get("body"), raw=answer.get("raw"), path=TXT2IMG)

    with pytest.raises(ProviderUnavailable) as caught:
        await provider.generate(generation())

    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.user_message == message
    assert caught.value.detail  # what went wrong is kept for the operator's log, not shown to the person


async def test_malformed_json_from_the_model_list(provider: A1111Provider, server: LoopbackA1111):
    server.malformed_next(path="/sd-models")

    with pytest.raises(ProviderUnavailable):
        await provider.models()


async def test_a_slow_server_times_out_and_its_job_is_interrupted(server: LoopbackA1111):
    server.delay_next(5, path=TXT2IMG)
    async with httpx.AsyncClient(timeout=0.3) as client:
        provider = A1111Provider(Settings(a1111_url=server.url), client=client)
        started = time.monotonic()

        with pytest.raises(ProviderTimeout) as caught:
            await provider.generate(generation())

        assert time.monotonic() - started < 2
        assert caught.value.kind is ErrorKind.TIMEOUT
        await provider.aclose()
        assert not client.is_closed  # an injected client belongs to the caller
    assert server.interrupt_calls == 1


async def test_a_stopped_server_is_unavailable(server: LoopbackA1111):
    provider = A1111Provider(Settings(a1111_url=server.url))
    server.stop()
    try:
        for call in (provider.models(), provider.generate(generation()), provider.interrupt()):
            with pytest.raises(ProviderUnavailable) as caught:
                await call
            assert caught.value.user_message == UNREACHABLE
    finally:
        await provider.aclose()


# -- interrupting ---------------------------------------------------------------------------------------------------


async def test_cancelling_the_generation_interrupts_the_server(provider: A1111Provider, server: LoopbackA1111):
    server.work_seconds = 10
    values: list[float] = []
    task = asyncio.create_task(provider.generate(generation(), values.append))
    await asyncio.to_thread(server.job_started.wait, 5)
    started = time.monotonic()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert server.interrupt_calls == 1
    await wait_until(lambda: server.interrupted_jobs == 1)
    assert time.monotonic() - started < 3
    assert server.completed_jobs == 0
    assert 1.0 not in values


async def test_interrupt_stops_the_running_job(provider: A1111Provider, server: LoopbackA1111):
    server.work_seconds = 10
    task = asyncio.create_task(provider.generate(generation(count=1)))
    await asyncio.to_thread(server.job_started.wait, 5)

    await provider.interrupt()
    result = await asyncio.wait_for(task, 5)  # A1111 answers an interrupted job with what it has

    assert server.interrupt_calls == 1 and server.interrupted_jobs == 1
    assert len(result.images) == 1


async def test_every_failure_is_a_provider_error_with_a_sentence(provider: A1111Provider, server: LoopbackA1111):
    for status in (400, 401, 403, 404, 405, 422, 429, 500, 502, 503):
        server.respond_next(status, raw=b"<html>proxy error</html>", content_type="text/html", path=TXT2IMG)
        with pytest.raises(ProviderError) as caught:
            await provider.generate(generation())
        assert caught.value.user_message.endswith("."), status
        assert "proxy error" not in caught.value.user_message
