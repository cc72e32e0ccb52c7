"""The Runware provider against a loopback server speaking the documented REST contract (no mocks)."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from rupali.config import Settings
from rupali.providers.base import (
    ContentBlocked,
    GenerationRequest,
    InvalidRequest,
    OutOfBalance,
    Provider,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from rupali.providers.runware import RunwareProvider, parse_models, size_presets, size_rule
from tests.utils.runware_server import RunwareServer, envelope

pytestmark = pytest.mark.sqlite_only

API_KEY = "rw-secret-key-0123456789abcdef"
FAST_RETRIES = (0.01, 0.02, 0.04)
FLUX_DEV = "runware:101@1"
SDXL = "civitai:101055@128078"


def make_settings(server: RunwareServer, **overrides: object) -> Settings:
    values: dict[str, object] = {"runware_api_key": SecretStr(API_KEY), "runware_url": server.url,
                                 "runware_models": f"runware:100@1=FLUX.1 schnell,{FLUX_DEV}=FLUX.1 dev,{SDXL}=SDXL",
                                 **overrides}
    return Settings(**values)


def request(**overrides: object) -> GenerationRequest:
    base = GenerationRequest(prompt="a lighthouse at dusk", negative_prompt="blurry", model=FLUX_DEV, width=1024,
                             height=768, steps=20, guidance=3.5, count=2, seed=1234)
    return replace(base, **overrides)  # type: ignore[arg-type]


def source_png(width: int = 64, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def server() -> Iterator[RunwareServer]:
    with RunwareServer(api_key=API_KEY) as running:
        yield running


@pytest.fixture
async def provider(server: RunwareServer) -> AsyncIterator[RunwareProvider]:
    # trust_env=False: a proxy in the developer's environment must not sit between us and loopback.
    client = httpx.AsyncClient(timeout=10, trust_env=False)
    runware = RunwareProvider(make_settings(server), client=client, retry_delays=FAST_RETRIES)
    yield runware
    await runware.aclose()
    await client.aclose()


def only_task(server: RunwareServer, index: int = -1) -> dict[str, object]:
    body = server.posts[index].body
    assert isinstance(body, list) and len(body) == 1
    return body[0]


# -- success ----------------------------------------------------------------------------------------------------


async def test_generates_decodable_images_with_seeds_cost_and_the_documented_task(server, provider):
    result = await provider.generate(request(scheduler="Euler"))

    assert len(result.images) == 2
    for index, image in enumerate(result.images):
        with Image.open(io.BytesIO(image.data)) as decoded:
            decoded.load()
            assert decoded.format == "PNG" and decoded.size == (1024, 768)
        assert (image.format, image.width, image.height) == ("PNG", 1024, 768)
        assert image.seed == 1234 + index
        assert image.provider_nsfw is False
    assert result.cost == Decimal("0.0026")
    assert result.model_version == "1"

    [post] = server.posts
    assert post.headers["Authorization"] == f"Bearer {API_KEY}"
    assert post.headers["Content-Type"].startswith("application/json")
    task = only_task(server)
    assert uuid.UUID(task["taskUUID"]).version == 4
    assert task == {
        "taskType": "imageInference", "taskUUID": task["taskUUID"], "positivePrompt": "a lighthouse at dusk",
        "negativePrompt": "blurry", "model": FLUX_DEV, "width": 1024, "height": 768, "steps": 20, "CFGScale": 3.5,
        "numberResults": 2, "seed": 1234, "scheduler": "Euler", "outputType": "base64Data", "outputFormat": "PNG",
        "includeCost": True, "safety": {"checkContent": True},
    }


async def test_empty_negative_prompt_and_scheduler_are_omitted_and_task_uuids_are_fresh(server, provider):
    await provider.generate(request(negative_prompt="  ", count=1))
    await provider.generate(request(count=1))
    first, second = only_task(server, 0), only_task(server, 1)
    assert "negativePrompt" not in first and "scheduler" not in first
    assert first["taskUUID"] != second["taskUUID"]


async def test_img2img_sends_the_source_as_a_png_data_uri_with_strength(server, provider):
    source = source_png()
    result = await provider.generate(request(source_image=source, strength=0.35, count=1))

    assert len(result.images) == 1
    task = only_task(server)
    assert task["seedImage"] == "data:image/png;base64," + base64.b64encode(source).decode("ascii")
    assert task["strength"] == 0.35


@pytest.mark.parametrize("output_type", ["URL", "dataURI"])
async def test_url_and_data_uri_results_are_read_and_the_key_stays_with_the_api(server, output_type):
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        runware = RunwareProvider(make_settings(server), client=client, retry_delays=FAST_RETRIES,
                                  output_type=output_type)
        result = await runware.generate(request(model=SDXL, width=768, height=1024, count=3))

    assert [(image.width, image.height, image.format) for image in result.images] == [(768, 1024, "PNG")] * 3
    assert [image.seed for image in result.images] == [1234, 1235, 1236]
    assert only_task(server)["outputType"] == output_type
    gets = server.image_gets
    assert len(gets) == (3 if output_type == "URL" else 0)
    assert all("Authorization" not in get.headers for get in gets)


async def test_an_owned_client_is_made_from_settings_and_closed(server):
    runware = RunwareProvider(make_settings(server, runware_timeout_seconds=7), retry_delays=FAST_RETRIES)
    assert runware._client.timeout.read == 7
    await runware.aclose()
    assert runware._client.is_closed


# -- models and sizes -----------------------------------------------------------------------------------------


async def test_models_come_from_settings_with_their_size_rule_and_capabilities(provider):
    models = {model.id: model for model in await provider.models()}
    assert list(models) == ["runware:100@1", FLUX_DEV, SDXL]
    flux, sdxl = models[FLUX_DEV], models[SDXL]
    assert (flux.label, flux.version, sdxl.version) == ("FLUX.1 dev", "1", "128078")
    assert (flux.max_images, flux.img2img, flux.negative_prompt, flux.progress, flux.is_ai) == (4, True, True,
                                                                                                 False, True)
    assert flux.sizes[0] == (1024, 1024) and {(832, 1216), (1216, 832)} <= set(flux.sizes)
    assert all(flux.size_rule.allows(*size) for size in flux.sizes)
    assert all(sdxl.size_rule.allows(*size) for size in sdxl.sizes) and (768, 1024) in sdxl.sizes


def test_the_size_rule_differs_for_flux():
    flux, other = size_rule(FLUX_DEV), size_rule(SDXL)
    assert flux.allows(1040, 1040) and flux.allows(128, 2048)
    assert not flux.allows(1000, 1000) and not flux.allows(112, 512) and not flux.allows(2064, 1024)
    assert not other.allows(1040, 1040) and other.allows(1088, 896) and not other.allows(448, 512)
    assert all(other.allows(*size) for size in size_presets(SDXL))


def test_model_list_parsing_tolerates_spaces_missing_labels_and_repeats():
    assert parse_models(" a:1@2 = One , b:3@4,, a:1@2=Again ") == [("a:1@2", "One"), ("b:3@4", "b:3@4")]


async def test_flux_accepts_a_size_in_steps_of_16_end_to_end(server, provider):
    result = await provider.generate(request(width=1040, height=1040, count=1))
    assert (result.images[0].width, result.images[0].height) == (1040, 1040)


@pytest.mark.parametrize(("overrides", "sentence"), [
    ({"prompt": "  cat  "}, "Prompts for this model need at least 4 characters."),
    ({"prompt": "x" * 2001}, "Prompts for this model can have at most 2000 characters."),
    ({"width": 1000, "height": 1000}, f"This model needs an image size of {size_rule(FLUX_DEV).describe()}."),
    ({"model": SDXL, "width": 1040, "height": 1040},
     f"This model needs an image size of {size_rule(SDXL).describe()}."),
    ({"count": 5}, "This model makes 1 to 4 images at a time."),
    ({"model": "runware:999@9"}, "This model is not offered here."),
])
async def test_requests_runware_would_refuse_fail_before_any_http(server, provider, overrides, sentence):
    with pytest.raises(InvalidRequest) as caught:
        await provider.generate(request(**overrides))
    assert caught.value.user_message == sentence
    assert server.requests == []


# -- errors -------------------------------------------------------------------------------------------------------


async def test_a_refused_key_is_provider_unavailable_without_the_key(server):
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        runware = RunwareProvider(make_settings(server, runware_api_key=SecretStr("wrong-key-987")), client=client,
                                  retry_delays=FAST_RETRIES)
        with pytest.raises(ProviderUnavailable) as caught:
            await runware.generate(request())
    assert "API key was refused" in caught.value.user_message
    assert "invalidApiKey" in caught.value.detail
    assert "wrong-key-987" not in str(caught.value) and "wrong-key-987" not in repr(caught.value)
    assert len(server.posts) == 1  # a refused key is not retried


async def test_403_is_also_a_refused_key(server, provider):
    server.fail_next(403, envelope("forbidden", "Key lacks permission"))
    with pytest.raises(ProviderUnavailable, match="API key was refused"):
        await provider.generate(request())


async def test_402_is_out_of_balance(server, provider):
    server.fail_next(402, envelope("insufficientCredits", "Balance too low"))
    with pytest.raises(OutOfBalance) as caught:
        await provider.generate(request())
    assert "insufficientCredits" in caught.value.detail
    assert len(server.posts) == 1


async def test_400_names_the_parameter_in_a_sentence(server, provider):
    server.fail_next(400, envelope("invalidSteps", "Steps out of range", "steps", taskType="imageInference"))
    with pytest.raises(InvalidRequest) as caught:
        await provider.generate(request())
    assert caught.value.user_message == "The image service did not accept the number of steps."


async def test_the_older_single_error_shape_is_understood(server, provider):
    server.fail_next(400, {"error": {"code": "invalidModel", "message": "Unknown model", "parameter": "model"}})
    with pytest.raises(InvalidRequest, match="did not accept the model"):
        await provider.generate(request())


async def test_the_servers_own_validation_comes_back_as_invalid_request(server, provider):
    # The provider leaves the negative prompt's length to Runware: a real 400 round trip.
    with pytest.raises(InvalidRequest, match="did not accept the negative prompt"):
        await provider.generate(request(negative_prompt="n" * 2001))


async def test_429_then_success_retries(server, provider):
    server.fail_next(429, envelope("tooManyRequests", "Slow down"), times=2)
    result = await provider.generate(request(count=1))
    assert len(result.images) == 1
    assert len(server.posts) == 3
    uuids = {only_task(server, index)["taskUUID"] for index in range(3)}
    assert len(uuids) == 1  # the same task is retried, not a new one


async def test_429_forever_is_rate_limited_after_every_retry(server, provider):
    server.fail_next(429, envelope("tooManyRequests", "Slow down"), times=10)
    with pytest.raises(RateLimited):
        await provider.generate(request())
    assert len(server.posts) == 1 + len(FAST_RETRIES)


async def test_retry_after_is_honoured_up_to_the_longest_delay(server, provider):
    server.fail_next(429, times=1, headers={"Retry-After": "30"})
    started = time.monotonic()
    await provider.generate(request(count=1))
    assert time.monotonic() - started < 2  # capped at max(FAST_RETRIES), not 30 s


@pytest.mark.parametrize("status", [503, 504])
async def test_503_and_504_are_retried(server, provider, status):
    server.fail_next(status, times=1)
    result = await provider.generate(request(count=1))
    assert len(result.images) == 1 and len(server.posts) == 2


async def test_503_forever_is_unavailable(server, provider):
    server.fail_next(503, times=10)
    with pytest.raises(ProviderUnavailable):
        await provider.generate(request())
    assert len(server.posts) == 1 + len(FAST_RETRIES)


@pytest.mark.parametrize("status", [500, 502])
async def test_other_server_errors_are_unavailable_and_not_retried(server, provider, status):
    server.fail_next(status, envelope("internalServerError", "Boom"))
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.generate(request())
    assert f"HTTP {status}" in caught.value.detail
    assert len(server.posts) == 1


async def test_a_non_json_error_page_is_classified_by_status(server, provider):
    server.fail_next(402, b"<html>Payment Required</html>")
    with pytest.raises(OutOfBalance):
        await provider.generate(request())


async def test_malformed_json_is_unavailable_with_detail(server, provider):
    server.malformed_next()
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.generate(request())
    assert "malformed JSON" in caught.value.detail


@pytest.mark.parametrize("payload", [b"[]", b'{"data": "nope"}', b'{"data": []}',
                                     b'{"data": [{"taskType": "imageInference", "taskUUID": "someone-else"}]}'])
async def test_answers_without_our_images_are_unavailable(server, provider, payload):
    server.malformed_next(body=payload)
    with pytest.raises(ProviderUnavailable):
        await provider.generate(request(count=1))


@pytest.mark.parametrize("output_type", ["base64Data", "URL"])
async def test_a_broken_image_is_unavailable(server, output_type):
    server.corrupt_images = True
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        runware = RunwareProvider(make_settings(server), client=client, retry_delays=FAST_RETRIES,
                                  output_type=output_type)
        with pytest.raises(ProviderUnavailable) as caught:
            await runware.generate(request(count=1))
    assert "does not decode" in caught.value.detail


async def test_a_timeout_is_provider_timeout_and_is_not_retried(server):
    server.delay_next(5)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=0.3, trust_env=False) as client:
        runware = RunwareProvider(make_settings(server), client=client, retry_delays=FAST_RETRIES)
        with pytest.raises(ProviderTimeout):
            await runware.generate(request(count=1))
    assert time.monotonic() - started < 2
    assert len(server.posts) == 1


async def test_a_connection_error_is_unavailable():
    with RunwareServer(api_key=API_KEY) as gone:
        settings = make_settings(gone)
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        runware = RunwareProvider(settings, client=client, retry_delays=FAST_RETRIES)
        with pytest.raises(ProviderUnavailable) as caught:
            await runware.generate(request())
    assert "ConnectError" in caught.value.detail


# -- content safety ---------------------------------------------------------------------------------------------


async def test_the_nsfw_flag_propagates(server, provider):
    server.nsfw = True
    result = await provider.generate(request())
    assert [image.provider_nsfw for image in result.images] == [True, True]


async def test_sensitive_content_is_content_blocked(server, provider):
    server.blocked_words = {"forbidden"}
    with pytest.raises(ContentBlocked) as caught:
        await provider.generate(request(prompt="something forbidden here"))
    assert caught.value.user_message == ContentBlocked.default_message
    assert "sensitiveContentDetected" in caught.value.detail


# -- the key ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 402, 429, 500])
async def test_the_key_never_appears_in_errors_even_when_echoed(server, provider, status, caplog):
    server.fail_next(status, envelope("echo", f"Key {API_KEY} said no", "model"), times=10)
    with pytest.raises(ProviderError) as caught:
        await provider.generate(request())
    for text in (str(caught.value), repr(caught.value), caught.value.user_message, caught.value.detail,
                 caplog.text):
        assert API_KEY not in text


async def test_the_key_never_appears_in_a_malformed_answer_echo(server, provider):
    server.malformed_next(body=f"oops {API_KEY}".encode())
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.generate(request())
    assert API_KEY not in str(caught.value) and "[key]" in caught.value.detail


def test_a_provider_without_a_key_is_refused_at_construction(server):
    with pytest.raises(ValueError, match="RUPALI_RUNWARE_API_KEY"):
        RunwareProvider(Settings(runware_url=server.url))


async def test_it_is_a_provider_and_leaves_a_given_client_open(server):
    async with httpx.AsyncClient(trust_env=False) as client:
        runware: Provider = RunwareProvider(make_settings(server), client=client)
        assert (runware.name, runware.label) == ("runware", "Runware")
        await runware.aclose()
        assert not client.is_closed
