"""The element data embedded in a page is ASCII, and the browser reads the same text from it."""

from __future__ import annotations

import json

import pytest
from nicegui import json as nicegui_json
from nicegui.testing import User

from components import page_json
from tests.utils import page_data
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

TEXTS = ["plain", "© Rupali · café", "Zoë 🦊 Ødegård", "\u2028\u2029", 'quotes " and \\ backslash \\u00e9',
         "<script>&`$</script>", "\x00 NUL", "日本語", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]


@pytest.mark.parametrize("text", TEXTS)
def test_a_text_comes_back_the_same_from_ascii_json(text: str):
    written = page_json.dumps({"text": text, "list": [text, 1, None, True], text: "as a key"})
    assert written.isascii()
    assert json.loads(written) == {"text": text, "list": [text, 1, None, True], text: "as a key"}


def test_ascii_json_is_nicegui_s_own_where_it_was_ascii_already():
    value = {"tag": "div", "props": {"aria-label": "Cookie notice", "n": 3}}
    assert page_json.dumps(value) == nicegui_json.dumps(value)


async def test_a_page_carries_a_person_s_name_in_ascii_and_the_browser_reads_it_back(user: User):
    person = make_user(full_name="Zoë 🦊 Ødegård <b>&amp;</b>")
    await sign_in(user, person.email)
    response = await user.http_client.get("/studio")
    assert response.status_code == 200
    raw = page_data.embedded(response.text)
    assert raw.isascii()
    names = [element.get("props", {}).get("name") for element in page_data.elements_of(response.text).values()]
    assert "Account menu for Zoë 🦊 Ødegård <b>&amp;</b>" in names  # as data, shown as text (account_face.js)
    assert "<b>" not in raw  # and escaped for the HTML around it
