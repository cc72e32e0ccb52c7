"""People's text is never code: prompts, names, key names and browser names with quotes, backslashes, markup,
template braces, bidi marks, emoji and 2,000 characters render verbatim on every page that shows them, and text
that cannot be stored is refused at the boundary with a sentence naming the field."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from rupali.db import session_scope
from rupali.models import Generation, Role
from rupali.services import api_keys
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

# Each breaks something a careless page does with text: props strings, attributes, inline script, Vue templates.
HOSTILE = {
    "quotes": "Ada \"the Countess\" O'Lovelace `tick`",
    "backslashes": r"C:\Users\me\ref.png \N \x41 \u1234 \\ end\\",
    "script": "</script><script>window.__pwned = 1</script>",
    "attribute": "\"><img src=x onerror=\"window.__pwned=1\"> ' onmouseover='window.__pwned=1",
    "template": "{{ constructor.constructor('window.__pwned=1')() }} ${window.__pwned=1}",
    "bidi": "\u202eevil.exe\u202c and \u200f\u05e9\u05dc\u05d5\u05dd\u200e mark",
    "emoji": "fox \U0001f98a flag \U0001f3f3\ufe0f\u200d\U0001f308 e\u0301",
}
LONG_PROMPT = "a very long prompt " + "x" * 1981  # 2,000 characters


def api_keys_name(text: str) -> str:
    """The key name as stored: runs of spaces become one."""
    return " ".join(text[:80].split())


def _seed(text: str) -> tuple[str, str]:
    """A person named ``text`` with a generation prompted ``text`` and an API key named ``text``."""
    person = make_user(email="hostile@example.com", full_name=text[:200], role=Role.ADMIN)
    _, [image] = add_generation(person, text, negative=text)
    with session_scope() as session:
        api_keys.create(session, person, text[:80])
    return person.email, str(image.id)


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_text_renders_verbatim_on_every_page(user: User, name: str):
    text = HOSTILE[name]
    email, image_id = _seed(text)
    user.http_client.headers["user-agent"] = "Mozilla/5.0 \"><b>agent</b> \\x 'quoted'"  # the session's device
    await sign_in(user, email)
    for path in ("/studio", "/gallery", f"/gallery?image={image_id}", "/history", "/account", "/admin"):
        response = await user.http_client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        await user.open(path)
        await user.should_see(text[:200] if path in ("/account", "/admin") else text, retries=20)
    await user.open("/account")
    [revoke] = user.find(kind=ui.button, content="Revoke").elements
    assert revoke.props["aria-label"] == f"Revoke {api_keys_name(text)}"  # an attribute, carried verbatim


async def test_a_2000_character_prompt_renders_in_the_studio_gallery_and_history(user: User):
    email, image_id = _seed(LONG_PROMPT)
    await sign_in(user, email)
    for path in ("/studio", f"/gallery?image={image_id}", "/history"):
        await user.open(path)
        await user.should_see(LONG_PROMPT, retries=20)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("prompt", "a cat \x00 on a mat", "The prompt contains the control character U+0000, which is not allowed here."),
    ("prompt", "a cat \ud800 on a mat", "The prompt contains characters that are not valid text. Please retype it."),
    ("prompt", "a cat \x1b[31m red", "The prompt contains the control character U+001B, which is not allowed here."),
    ("negative_prompt", "blurry\x07", "The negative prompt contains the control character U+0007, which is not "
                                      "allowed here."),
    ("scheduler", "s" * 61, "The scheduler is 61 characters long; the limit is 60."),
    ("scheduler", "Euler\na", "The scheduler contains a line break, which is not allowed here."),
])
async def test_text_that_cannot_be_stored_is_refused_naming_the_field(user: User, field: str, value: str,
                                                                      message: str):
    with session_scope() as session:
        _, secret = api_keys.create(session, make_user(), "tests")
    body = {"prompt": "a cat on a mat", "model": "offline:sketch-v1", "width": 512, "height": 512, field: value}
    # The JSON escape keeps the lone surrogate intact on the wire, as a hostile client would send it.
    import json

    raw = json.dumps(body, ensure_ascii=True).encode()
    response = await user.http_client.post("/api/v1/generations", content=raw, headers={
        "Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and response.json()["detail"] == message
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == []


@pytest.mark.parametrize("name", ["Ada \x00 Lovelace", "Ada \ud800", "Ada\nLovelace"])
async def test_a_name_that_cannot_be_stored_is_refused_on_the_account_page(user: User, name: str):
    person = make_user(full_name="Ada Lovelace")
    await sign_in(user, person.email)
    await user.open("/account")
    field = user.find(kind=ui.input, content="Full name")
    field.clear()
    for element in field.elements:
        element.value = name
    user.find(kind=ui.button, content="Save name").click()
    await user.should_see("Your name contains", retries=50)
    await user.open("/account")
    await user.should_see("Ada Lovelace")
