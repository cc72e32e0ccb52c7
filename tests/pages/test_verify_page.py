"""/verify: anyone, signed out, checks a file's Content Credentials through the drop zone; damaged and hostile
files get a sentence; old confirmation links move on to /confirm-email; nothing is stored."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

import aiofiles.tempfile
import pytest
from nicegui import ui
from nicegui.testing import User
from PIL import Image

from components.file_drop import FileDrop
from components.text import Text
from rupali import provenance, runtime, xmp
from rupali.config import get_settings, reset_settings
from rupali.gate import AUTH_COOKIE
from rupali.provenance import ContentCredentials
from tests.services.test_provenance import PARAMETERS, ec_family, encode, noise, origin, tamper_pixel

INTACT = "Content Credentials intact: signed by "
CHANGED = "Content Credentials are present but do not match the file: it was changed after signing."


def _media() -> list[str]:
    media = get_settings().effective_media_dir
    return sorted(str(path.relative_to(media)) for path in Path(media).rglob("*")) if media.exists() else []


async def _check(user: User, name: str, data: bytes, content_type: str = "image/png") -> None:
    """Send a file through the page's drop zone, as the browser does (NiceGUI's upload route)."""
    [picker] = user.find(kind=FileDrop).elements
    assert picker.props["label"] == "Choose an image to check"
    response = await user.http_client.post(picker.props["url"], files={"file": (name, data, content_type)})
    assert response.status_code == 200, response.text


def _result_rows(user: User) -> dict[str, str]:
    """The result's ``dt``/``dd`` pairs, in order."""
    [result] = [element for element in user.find(kind=ui.element).elements if "r-verify-result" in element.classes]
    texts = [element for element in result.descendants() if isinstance(element, Text)]
    terms = [element.text for element in texts if element.tag == "dt"]
    values = [element.text for element in texts if element.tag == "dd"]
    assert len(terms) == len(values)
    return dict(zip(terms, values, strict=True))


def _banner(user: User) -> str:
    [banner] = [label for label in user.find(kind=ui.label).elements if label.props.get("role") == "alert"]
    return banner.text


async def test_a_signed_image_is_shown_intact_with_what_made_it(user: User):
    before = _media()
    await user.open("/verify")
    assert user.http_client.cookies.get(AUTH_COOKIE) is None  # signed out
    await user.should_see("Check an image")
    signed = runtime.current().credentials.sign(encode(noise()), "PNG", origin(), parameters=PARAMETERS)
    await _check(user, "fox.png", signed)
    await user.should_see(INTACT, retries=50)
    await user.should_see("Result for fox.png")
    rows = _result_rows(user)
    assert rows["Content Credentials"] == "present"
    assert rows["Made"] == "AI-generated (trained algorithmic media)"
    assert rows["Tool and model"] == "Runware / flux-dev"
    assert rows["Signed by"].startswith(runtime.current().credentials.signer_name)
    assert "2025" in rows["Signed on"]
    assert rows["Signature and pixels"] == "intact"
    assert rows["Signer"] == "this installation's own certificate"
    assert rows["XMP digital source type"] == xmp.TRAINED
    assert _banner(user) == ""
    assert _media() == before


async def test_a_changed_image_does_not_match_and_says_what_failed(user: User):
    await user.open("/verify")
    signed = runtime.current().credentials.sign(encode(noise()), "PNG", origin(xmp.ALGORITHMIC), parameters=None)
    await _check(user, "changed.png", tamper_pixel(signed))
    await user.should_see(CHANGED, retries=50)
    await user.should_see("What does not check out")
    rows = _result_rows(user)
    assert rows["Signature and pixels"] == "do not match: changed after signing"
    assert rows["Made"] == "Procedural (algorithmic media, no AI model)"
    assert "Signer" not in rows  # who signed a file that does not match is not vouched for
    await user.should_see("assertion.dataHash.mismatch")


async def test_an_unsigned_image_says_nothing_about_its_origin(user: User):
    await user.open("/verify")
    await _check(user, "plain.jpg", encode(noise(), "JPEG"), "image/jpeg")
    await user.should_see("No Content Credentials and no digital source type", retries=50)
    rows = _result_rows(user)
    assert rows["Content Credentials"] == "none" and "Signature and pixels" not in rows


async def test_files_that_are_not_images_get_a_sentence_and_the_last_result_goes(user: User):
    before = _media()
    await user.open("/verify")
    signed = runtime.current().credentials.sign(encode(noise()), "PNG", origin())
    await _check(user, "first.png", signed)
    await user.should_see(INTACT, retries=50)
    await _check(user, "notes.txt", b"just some notes, not a picture\n", "text/plain")
    await user.should_see("This file is not an image. Choose a PNG, JPEG or WebP image.", retries=50)
    await user.should_not_see(INTACT)  # the result of the previous file is not left next to the refusal
    gif = encode(Image.new("P", (8, 8)), "GIF")
    await _check(user, "anim.gif", gif, "image/gif")
    await user.should_see("This file is a GIF image. Choose a PNG, JPEG or WebP image.", retries=50)
    assert _banner(user) == "This file is a GIF image. Choose a PNG, JPEG or WebP image."
    whole = encode(noise())
    await _check(user, "cut.png", whole[:len(whole) // 2])
    await user.should_see("The image is damaged or incomplete.", retries=50)
    await _check(user, "again.png", signed)  # a good file afterwards clears the banner
    await user.should_see(INTACT, retries=50)
    assert _banner(user) == ""
    assert _media() == before


async def test_an_old_confirmation_link_moves_to_confirm_email(user: User):
    response = await user.http_client.get("/verify?token=abc", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/confirm-email?token=abc"
    hostile = await user.http_client.get("/verify", params={"token": "a&b=c d"}, follow_redirects=False)
    assert hostile.status_code == 307 and hostile.headers["location"] == "/confirm-email?token=a%26b%3Dc+d"
    page = await user.http_client.get("/verify", follow_redirects=False)
    assert page.status_code == 200  # no token: the checker itself, open to anyone


async def test_a_file_over_a_megabyte_is_checked_without_touching_the_disk(user: User, monkeypatch):
    """Starlette and NiceGUI spool uploads over 1 MB to temporary files unless told otherwise."""
    spooled: list[str] = []
    rollover, named = tempfile.SpooledTemporaryFile.rollover, aiofiles.tempfile.NamedTemporaryFile

    def recorded_rollover(self):  # Starlette's multipart parser moving a part to disk
        spooled.append("starlette")
        return rollover(self)

    def recorded_named(*args, **kwargs):  # NiceGUI keeping a large upload in a file
        spooled.append("nicegui")
        return named(*args, **kwargs)

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", recorded_rollover)
    monkeypatch.setattr(aiofiles.tempfile, "NamedTemporaryFile", recorded_named)
    signed = runtime.current().credentials.sign(encode(noise(side=1024)), "PNG", origin())
    assert len(signed) > 3 * 1024 * 1024
    await user.open("/verify")
    await _check(user, "big.png", signed)
    await user.should_see(INTACT, retries=50)
    assert spooled == []


async def test_a_request_with_many_files_gets_one_check(user: User, monkeypatch):
    checked: list[int] = []
    examine = provenance.examine

    def counted(*args, **kwargs):
        checked.append(1)
        return examine(*args, **kwargs)

    monkeypatch.setattr(provenance, "examine", counted)
    await user.open("/verify")
    [picker] = user.find(kind=FileDrop).elements
    png = encode(noise())
    response = await user.http_client.post(picker.props["url"],
                                           files=[(f"file{n}", (f"{n}.png", png, "image/png")) for n in range(20)])
    assert response.status_code == 200
    await user.should_see("No Content Credentials", retries=50)
    await asyncio.sleep(0.5)  # the other nineteen parts' handlers have all run by now
    assert len(checked) == 1
    assert len([e for e in user.find(kind=Text).elements if e.text.startswith("Result for ")]) == 1


@pytest.fixture
def three_checks_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_RATE_LIMIT_API_PER_IP_MINUTE", "3")
    reset_settings()


async def test_checks_count_against_the_per_minute_limits(three_checks_a_minute: None, user: User):
    await user.open("/verify")
    png = encode(noise())
    for number in range(3):
        await _check(user, f"{number}.png", png)
        await user.should_see(f"Result for {number}.png", retries=50)
    await _check(user, "3.png", png)
    await user.should_see("You are checking images too quickly. Try again in", retries=50)
    assert "Result for 3.png" not in [element.text for element in user.find(kind=Text).elements]


async def test_a_stranger_s_intact_file_is_not_shown_as_vouched_for(user: User):
    [theirs] = ec_family(timedelta(days=30))
    signed = ContentCredentials(*theirs).sign(encode(noise()), "PNG", origin())
    await user.open("/verify")
    await _check(user, "stranger.png", signed)
    await user.should_see("an identity this installation cannot confirm", retries=50)
    [verdict] = [label for label in user.find(kind=ui.label).elements if "r-banner" in label.classes
                 and label.text.startswith("Content Credentials intact")]
    assert "r-banner--note" in verdict.classes and "r-banner--success" not in verdict.classes
    assert _result_rows(user)["Signer"] == "an identity this installation cannot confirm"


async def test_a_hostile_file_name_is_shown_as_text(user: User):
    name = 'a"b\\c</script><img src=x onerror=alert(1)>{{ 1+1 }}\u202e.png'
    await user.open("/verify")
    await _check(user, name, encode(noise()))
    await user.should_see("No Content Credentials", retries=50)
    headings = [element.text for element in user.find(kind=Text).elements if element.text.startswith("Result for ")]
    shown = name.rsplit("/")[-1].rsplit("\\")[-1]  # NiceGUI drops what looks like a path; the rest stays verbatim
    assert headings == [f"Result for {shown}"] and "<img src=x onerror=alert(1)>{{ 1+1 }}" in shown
