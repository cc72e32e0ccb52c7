"""Everything that can be checked before a job is queued is checked then: what the studio and the API accept, every
provider's own pre-flight accepts too, so no request is taken (202) only to fail later."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from nicegui.testing import User
from pydantic import SecretStr
from sqlmodel import select

from rupali.config import Settings, reset_settings
from rupali.db import session_scope
from rupali.models import Generation
from rupali.providers import ModelChoice
from rupali.providers.a1111 import A1111Provider
from rupali.providers.base import GenerationRequest, InvalidRequest, ModelInfo
from rupali.providers.offline import MODEL as OFFLINE_MODEL
from rupali.providers.offline import _check as offline_check
from rupali.providers.runware import RunwareProvider
from rupali.services import api_keys
from rupali.services import generation as generations
from tests.utils.a1111_server import LoopbackA1111, running_server
from tests.utils.factories import make_user
from tests.utils.runware_server import RunwareServer

API_KEY = "rw-secret-key-0123456789abcdef"
MODELS = "runware:100@1=FLUX.1 schnell,civitai:101055@128078=SDXL"


# --- the same rules in the form and in each provider ----------------------------------------------------------------

@pytest.fixture
def runware_server() -> Iterator[RunwareServer]:
    with RunwareServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def a1111_server() -> Iterator[LoopbackA1111]:
    with running_server() as server:
        yield server


@pytest.fixture
async def preflights(runware_server: RunwareServer, a1111_server: LoopbackA1111) -> AsyncIterator[list]:
    """(provider name, model, pre-flight check) for every model of every provider."""
    runware = RunwareProvider(Settings(runware_api_key=SecretStr(API_KEY), runware_url=runware_server.url,
                                       runware_models=MODELS), client=httpx.AsyncClient(trust_env=False))
    a1111 = A1111Provider(Settings(a1111_url=a1111_server.url))
    checks = [("offline", OFFLINE_MODEL, offline_check)]
    checks += [("runware", info, runware._task) for info in await runware.models()]
    checks += [("a1111", info, a1111._payload) for info in await a1111.models()]
    yield checks
    await runware.aclose()
    await a1111.aclose()


def _forms(info: ModelInfo) -> Iterator[generations.GenerationForm]:
    rule = info.size_rule
    sides = sorted({rule.minimum - rule.multiple, rule.minimum, rule.minimum + 1, 1000, 1024, rule.maximum,
                    rule.maximum + rule.multiple})
    sizes = list(info.sizes) + [(side, side) for side in sides]
    prompts = ["", " ", "a", "cat", "  cat  ", "lamp", "x" * generations.PROMPT_MAX, "x" * (generations.PROMPT_MAX + 1)]
    for prompt, (width, height), count in itertools.product(prompts, sizes, (0, 1, info.max_images, 5)):
        yield generations.GenerationForm(prompt=prompt, model="m", width=width, height=height, count=count)


@pytest.mark.sqlite_only
async def test_what_the_form_accepts_every_provider_accepts(preflights):
    settings = Settings(max_images_per_request=16)
    checked = accepted = 0
    for provider, info, preflight in preflights:
        choice = ModelChoice(provider, provider, info)
        for form in _forms(info):
            checked += 1
            try:
                valid = generations.validate(settings, choice, form)
            except generations.InvalidGeneration:
                continue
            accepted += 1
            request = GenerationRequest(prompt=valid.prompt, negative_prompt=valid.negative_prompt, model=info.id,
                                        width=valid.width, height=valid.height, steps=valid.steps or 0,
                                        guidance=valid.guidance or 0.0, count=valid.count, seed=valid.seed or 0)
            try:
                preflight(request)
            except InvalidRequest as exc:
                raise AssertionError(f"{provider} {info.id} refuses what the form accepted: {form} "
                                     f"({exc.user_message})") from None
    assert accepted > 0 and accepted < checked  # both sides of the rules were exercised


@pytest.mark.sqlite_only
def test_every_preset_size_follows_its_models_rule():
    from rupali.providers import a1111, runware

    infos = [OFFLINE_MODEL, *(runware.model_info(air, label) for air, label in runware.parse_models(MODELS)),
             a1111.model_info({"title": "sd_xl_base_1.0.safetensors [31e35c80fc]", "model_name": "sd_xl_base_1.0",
                               "hash": "31e35c80fc"}, ())]
    for info in infos:
        assert info.sizes and all(info.size_rule.allows(*size) for size in info.sizes), info


# --- the API answers 422, naming the field and the rule ------------------------------------------------------------

@pytest.fixture
def runware_app(monkeypatch: pytest.MonkeyPatch, runware_server: RunwareServer) -> RunwareServer:
    monkeypatch.setenv("RUPALI_RUNWARE_API_KEY", API_KEY)
    monkeypatch.setenv("RUPALI_RUNWARE_URL", runware_server.url)
    monkeypatch.setenv("RUPALI_RUNWARE_MODELS", MODELS)
    reset_settings()
    return runware_server


@pytest.fixture
def user(runware_app: RunwareServer, user: User) -> User:
    """The simulated browser, on an app built after Runware was configured."""
    return user


def _headers() -> dict[str, str]:
    with session_scope() as session:
        _, secret = api_keys.create(session, make_user(), "tests")
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize(("changes", "field", "detail"), [
    ({"prompt": "cat"}, "prompt", "FLUX.1 schnell needs a prompt of at least 4 characters."),
    ({"width": 1000, "height": 1000}, "size",
     "1000x1000 is not a size FLUX.1 schnell can make: use 128–2048 pixels per side, in steps of 16."),
    ({"model": "runware:civitai:101055@128078", "width": 1040, "height": 1040}, "size",
     "1040x1040 is not a size SDXL can make: use 512–2048 pixels per side, in steps of 64."),
    ({"count": 5}, "count", "Ask for between 1 and 4 images."),
])
async def test_the_api_refuses_before_queueing_with_the_field_and_the_rule(user: User, runware_app: RunwareServer,
                                                                            changes, field, detail):
    body = {"prompt": "a lighthouse at dusk", "model": "runware:runware:100@1", "width": 1024, "height": 1024,
            **changes}
    response = await user.http_client.post("/api/v1/generations", json=body, headers=_headers())
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": detail, "field": field}
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == []
    assert runware_app.posts == []  # nothing reached the provider


async def test_a_request_just_inside_the_rules_is_accepted(user: User, runware_app: RunwareServer):
    body = {"prompt": "lamp", "model": "runware:runware:100@1", "width": 1008, "height": 2048}
    response = await user.http_client.post("/api/v1/generations", json=body, headers=_headers())
    assert response.status_code == 202, response.text

