"""No 5xx for a client's mistake: hostile input on every API route, byte ranges, the docs, the security scheme."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.exceptions import RequestValidationError
from nicegui.testing import User
from sqlmodel import select
from starlette.requests import Request

from rupali import api, runtime
from rupali.config import reset_settings
from rupali.db import session_scope
from rupali.image_files import ranged
from rupali.models import ApiKeyScope, Generation
from rupali.services import api_keys
from tests.api.test_api_keys import PUBLIC, SCOPES, api_routes
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user

DUMMY = "00000000-0000-4000-8000-000000000000"
BODY = {"prompt": "a lighthouse on a cliff at golden hour", "model": "offline:sketch-v1", "width": 512,
        "height": 512, "count": 1, "seed": 7}
# JSON values no field expects, each spelled as raw JSON: non-finite and huge numbers, lone surrogates, NUL,
# 100 KB strings, wrong types, nesting.
HOSTILE_VALUES = ["1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 30, '"\\ud800"', '"a\\udfffb"', '"\\u0000"',
                  '"' + "x" * 100_000 + '"', "[[[{}]]]", "{}", "null", "true", '"nan"', "-1"]
HOSTILE_BODIES = [b"", b"{not json", b"[1, 2]", b'"text"', b"12", b"null", b"[" * 5000 + b"]" * 5000,
                  b'{"prompt": "\xff\xfe"}', b'{"\\ud800": 1}', b'{"ids": [' + b'"' + DUMMY.encode() + b'",' * 6000
                  + b'"x"]}', b"9" * 5000]
HOSTILE_IDS = [DUMMY, "not-a-uuid", "%00", "%ED%A0%80", "%F0%9F%98%80", "a" * 3000, "..%2F..%2Fetc"]
HOSTILE_QUERIES = ["limit=1e400", "limit=" + "9" * 5000, "limit=-1", "limit=0", "limit=nan", "cursor=%00",
                   "cursor=" + "A" * 5000, "cursor=%ED%A0%80", "until=9999-12-31", "since=0001-01-01",
                   "since=99999-01-01", "model=%00", "search=%00", "search=" + "a%20" * 2000, "parameters=%00",
                   "favourites=%ED%A0%80", "show_nsfw=2"]
BODY_FIELDS = {"/v1/generations": BODY, "/v1/images/{image_id}/favourite": {"favourite": True},
               "/v1/images/zip": {"ids": [DUMMY]}}


def _key(person) -> dict[str, str]:
    with session_scope() as session:
        _, secret = api_keys.create(session, person, "probe", scope=ApiKeyScope.GENERATE)
    return {"Authorization": f"Bearer {secret}"}


def _with(body: dict, field: str, raw_value: str) -> bytes:
    """``body`` as JSON with ``field`` set to a raw JSON value (which json.dumps could not write)."""
    rest = json.dumps({name: value for name, value in body.items() if name != field})
    return (rest[:-1] + (", " if len(rest) > 2 else "") + f'"{field}": {raw_value}}}').encode()


@pytest.fixture
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzing below sends over a thousand requests as one person: every one must reach its route."""
    monkeypatch.setenv("RUPALI_RATE_LIMIT_API_PER_MINUTE", "100000")
    monkeypatch.setenv("RUPALI_RATE_LIMIT_API_PER_IP_MINUTE", "1000000")
    reset_settings()


async def test_no_hostile_request_to_any_api_route_gets_a_5xx(unlimited: None, user: User):
    owner = make_user()
    generation, images = add_generation(owner, "a private prompt")
    headers = _key(owner) | {"content-type": "application/json"}
    assert {(method, route.path) for route in api_routes() for method in route.methods} == set(SCOPES) | PUBLIC
    answered: list[tuple[str, str, int]] = []

    async def probe(method: str, path: str, content: bytes | None = None) -> None:
        response = await user.http_client.request(method, "/api" + path, content=content, headers=headers)
        answered.append((method, path[:80], response.status_code))
        assert response.status_code < 500, (method, path[:200], content and content[:200], response.text[:300])
        if response.headers.get("content-type", "").startswith("application/json"):
            response.json()  # whatever went wrong, the answer is JSON that parses

    for method, path in sorted(SCOPES, key=lambda key: key[0] == "DELETE"):
        ids = [str(images[0].id), str(generation.id), *HOSTILE_IDS] if "{" in path else [""]
        for value in ids:
            concrete = re.sub(r"\{[^}]+\}", value, path)
            await probe(method, concrete)
            if method == "GET":
                for query in HOSTILE_QUERIES:
                    await probe(method, f"{concrete}?{query}")
        if path in BODY_FIELDS:
            concrete = re.sub(r"\{[^}]+\}", str(images[0].id), path)
            for content in HOSTILE_BODIES:
                await probe(method, concrete, content)
            for field in BODY_FIELDS[path]:
                for raw_value in HOSTILE_VALUES:
                    await probe(method, concrete, _with(BODY_FIELDS[path], field, raw_value))
                    await probe(method, concrete, _with(BODY_FIELDS[path], field, f"[{raw_value}]"))
    for method, path in PUBLIC:  # the image check takes any bytes: junk is refused with a sentence
        for content in (None, b"", *HOSTILE_BODIES):
            await probe(method, path, content)
    assert len(answered) > 500 and any(status == 422 for *_, status in answered)
    assert not any(status == 429 for *_, status in answered)


@pytest.mark.parametrize(("content", "field", "sentence"), [
    (_with(BODY, "seed", "1e400"), "seed", "“seed” is not valid: input should be a finite number."),
    (_with(BODY, "seed", "-1e400"), "seed", "“seed” is not valid: input should be a finite number."),
    (_with(BODY, "seed", '"\\ud800"'), "seed", "“seed” is not valid: input should be a valid string, unable to "
                                               "parse raw data as a unicode string."),
    (_with(BODY, "width", "1.5"), "width", "“width” is not valid: input should be a valid integer, got a number "
                                           "with a fractional part."),
    (_with(BODY, "prompt", "[1]"), "prompt", "“prompt” is not valid: input should be a valid string."),
    (json.dumps({"model": "offline:sketch-v1", "width": 512, "height": 512}).encode(), "prompt",
     "“prompt” is required."),
    (b"{not json", "body", "The request body is not valid JSON."),
    (b"[1, 2]", "body", "The request body must be a JSON object."),
    (b"null", "body", "The request body must be a JSON object."),
    (b"", "body", "Send a JSON object as the request body."),
])
async def test_invalid_requests_get_422_with_a_sentence_naming_the_field(user: User, content: bytes, field: str,
                                                                         sentence: str):
    headers = _key(make_user()) | {"content-type": "application/json"}
    response = await user.http_client.post("/api/v1/generations", content=content, headers=headers)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert (answer["detail"], answer["field"]) == (sentence, field)
    assert all(set(error) == {"loc", "type", "msg"} for error in answer["errors"])  # inputs are never echoed
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == []


@pytest.mark.parametrize(("path", "content", "field", "fragment"), [
    ("/v1/images/zip", b'{"ids": ["\\ud800"]}', "ids", "“ids” (item 1) is not valid: input should be a valid string"),
    ("/v1/images/zip", b'{"ids": [1e400]}', "ids", "“ids” (item 1) is not valid: UUID input should be"),
    ("/v1/images/{id}/favourite", b'{"favourite": 1e400}', "favourite", "“favourite” is not valid: input should"),
])
async def test_other_bodies_get_the_same_422_shape(user: User, path: str, content: bytes, field: str, fragment: str):
    headers = _key(make_user()) | {"content-type": "application/json"}
    response = await user.http_client.post("/api" + path.replace("{id}", DUMMY), content=content, headers=headers)
    assert response.status_code == 422 and response.json()["field"] == field
    assert response.json()["detail"].startswith(fragment), response.json()["detail"]


async def test_unusable_query_values_get_422_naming_the_parameter(user: User):
    headers = _key(make_user())
    for query, field in (("limit=0", "limit"), ("limit=1e400", "limit"), ("limit=" + "9" * 5000, "limit"),
                         ("cursor=%00garbage", "cursor"), ("model=%00", "model"), ("search=%00", "search"),
                         ("search=" + "x" * 501, "search"), ("since=2024-02-30", "since")):
        response = await user.http_client.get(f"/api/v1/images?{query}", headers=headers)
        assert response.status_code == 422 and response.json()["field"] == field, (query, response.text)
    # The last day there is: every image is before it, so it filters nothing (it has no next day to stop at).
    until = await user.http_client.get("/api/v1/images?until=9999-12-31", headers=headers)
    assert until.status_code == 200 and until.json() == {"items": [], "next_cursor": None}


async def test_a_body_that_cannot_be_parsed_at_all_is_a_400_naming_the_body(user: User):
    headers = _key(make_user()) | {"content-type": "application/json"}
    for content in (b"[" * 5000 + b"]" * 5000, b'{"prompt": "\xff"}', b'{"seed": ' + b"9" * 5000 + b"}"):
        response = await user.http_client.post("/api/v1/generations", content=content, headers=headers)
        assert response.status_code == 400
        assert response.json() == {"detail": "The request body is not valid JSON.", "field": "body"}


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/generations", "headers": []})


async def test_the_validation_handler_answers_whatever_the_errors_hold(caplog):
    strange = RequestValidationError([
        {"loc": ("body", "\ud800" * 1000, float("inf"), 10**400), "type": "x\udfff", "msg": "bad \ud800",
         "input": float("nan"), "ctx": {"error": ValueError("no")}},
        "not an error entry",
        {"loc": None, "msg": b"\xff"},
    ])
    response = await api._invalid_request(_request(), strange)
    assert response.status_code == 422
    answer = json.loads(response.body)
    assert answer["field"].startswith("\\ud800\\ud800") and len(answer["field"]) <= 200
    assert answer["detail"].startswith("“\\ud800")
    assert len(answer["errors"]) == 3 and "input" not in answer["errors"][0]

    class Broken(RequestValidationError):
        def errors(self):
            raise RuntimeError("cannot list the errors")

    with caplog.at_level(logging.ERROR, logger="rupali.api"):
        fallback = await api._invalid_request(_request(), Broken([]))
    assert fallback.status_code == 422
    assert json.loads(fallback.body) == {"detail": "The request could not be read.", "field": "body", "errors": []}
    assert "cannot list the errors" in caplog.text


async def test_an_unexpected_error_is_a_json_500_with_a_reference_and_the_traceback_only_in_the_log(
        user: User, monkeypatch, caplog):
    async def broken() -> list:
        raise RuntimeError("SECRET internal detail")

    monkeypatch.setattr(runtime.current().providers, "catalogue", broken)
    response = await user.http_client.get("/api/v1/models", headers=_key(make_user()))
    assert response.status_code == 500
    answer = response.json()
    assert re.fullmatch(r"[0-9A-F]{6}", answer["reference"])  # the same kind of code the pages show
    assert answer["detail"].endswith(f"tell the operator this reference: {answer['reference']}.")
    assert "SECRET" not in response.text and "Traceback" not in response.text
    [record] = [record for record in caplog.records if record.name == "rupali.errors"]
    assert answer["reference"] in record.getMessage() and record.exc_info[0] is RuntimeError
    caplog.clear()  # the failure was the point; the fixture fails tests that leave ERROR logs behind


# --- byte ranges ---------------------------------------------------------------------------------------------------

DATA = b"0123456789"
HUGE = "9" * 5000


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("header", "status", "content", "content_range"), [
    (None, 200, DATA, None),
    ("bytes=0-3", 206, b"0123", "bytes 0-3/10"),
    ("bytes=7-", 206, b"789", "bytes 7-9/10"),
    ("bytes=-3", 206, b"789", "bytes 7-9/10"),
    ("bytes=5-500", 206, b"56789", "bytes 5-9/10"),  # a last position past the end means "to the end"
    ("bytes=-30", 206, DATA, "bytes 0-9/10"),  # a suffix longer than the data means all of it
    ("BYTES=0-0", 206, b"0", "bytes 0-0/10"),  # range units compare case-insensitively
    ("bytes=0-1,,", 206, b"01", "bytes 0-1/10"),  # lists may hold empty elements
    (f"bytes=0-{HUGE}", 206, DATA, "bytes 0-9/10"),  # numbers of any length are handled
    (f"bytes=-{HUGE}", 206, DATA, "bytes 0-9/10"),
    (f"bytes={'0' * 5000}1-2", 206, b"12", "bytes 1-2/10"),
    (f"bytes={HUGE}-", 416, b"", "bytes */10"),  # beyond any file: unsatisfiable
    ("bytes=10-", 416, b"", "bytes */10"),
    ("bytes=-0", 416, b"", "bytes */10"),
    ("bytes=20-30,40-", 416, b"", "bytes */10"),  # none of the ranges can be satisfied
    ("bytes=5-1", 416, b"", "bytes */10"),  # an end before its start makes the range set invalid
    ("bytes=0-1,5-1", 416, b"", "bytes */10"),
    ("bytes=abc", 416, b"", "bytes */10"),
    ("bytes=", 416, b"", "bytes */10"),
    ("bytes=-", 416, b"", "bytes */10"),
    ("bytes=--1", 416, b"", "bytes */10"),
    ("bytes=-1-2", 416, b"", "bytes */10"),
    ("bytes=1-2-3", 416, b"", "bytes */10"),
    ("bytes=0x1-2", 416, b"", "bytes */10"),
    ("bytes=\u0661-\u0662", 416, b"", "bytes */10"),  # only ASCII digits are digits here
    ("bytes=0-1,4-5", 200, DATA, None),  # several ranges: answered whole rather than as multipart
    ("bytes=20-30,0-1", 200, DATA, None),
    ("items=0-1", 200, DATA, None),  # a unit we do not serve is ignored, as RFC 9110 requires
    ("0-1", 200, DATA, None),
    ("", 200, DATA, None),
])
def test_byte_ranges(header: str | None, status: int, content: bytes, content_range: str | None):
    response = ranged(DATA, header, "image/png", {"Cache-Control": "private, no-store"})
    assert (response.status_code, response.body, response.headers.get("content-range")) == \
        (status, content, content_range)
    assert response.headers["accept-ranges"] == "bytes" and response.headers["cache-control"] == "private, no-store"


@pytest.mark.sqlite_only
def test_an_if_range_never_matches_so_the_whole_file_is_sent():
    response = ranged(DATA, "bytes=0-1", "image/png", {}, if_range='"some-etag"')
    assert (response.status_code, response.body) == (200, DATA)


async def test_a_range_header_of_thousands_of_digits_is_a_416_not_a_500(user: User):
    owner = make_user()
    _, images = add_generation(owner, "a prompt")
    headers = _key(owner)
    whole = await user.http_client.get(f"/api/v1/images/{images[0].id}", headers=headers)
    response = await user.http_client.get(f"/api/v1/images/{images[0].id}",
                                          headers=headers | {"Range": f"bytes={HUGE}-"})
    assert response.status_code == 416 and response.headers["content-range"] == f"bytes */{len(whole.content)}"


# --- documentation -------------------------------------------------------------------------------------------------

async def test_the_docs_load_every_asset_from_the_app_itself(user: User):
    page = await user.http_client.get("/api/docs")  # anonymous: the docs are public
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert not re.search(r"https?:|//[a-z0-9]", page.text, re.IGNORECASE), "the docs page names another host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3 and all(asset.startswith("/api/docs/") for asset in assets), assets
    assert "url: '/api/openapi.json'" in page.text and '"validatorUrl": null' in page.text
    kinds = set()
    for asset in assets:
        response = await user.http_client.get(asset)
        assert response.status_code == 200 and len(response.content) > 500, asset
        kinds.add(response.headers["content-type"].split(";")[0])
    assert kinds == {"text/javascript", "text/css", "image/png"}


async def test_openapi_declares_the_bearer_scheme_and_each_operations_scope(user: User):
    spec = (await user.http_client.get("/api/openapi.json")).json()
    scheme = spec["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "rk_…")
    operations = {(method.upper(), path): operation for path, item in spec["paths"].items()
                  for method, operation in item.items()}
    assert set(operations) == set(SCOPES) | PUBLIC
    for route_key, operation in operations.items():
        expected = [] if route_key in PUBLIC else [{"ApiKey": [SCOPES[route_key].value]}]
        assert operation["security"] == expected, route_key
