"""/verify: anyone, signed in or not, can check what an image says about its origin.

The file is read in memory under the upload limits, checked (a real PNG, JPEG or WebP, decoded to the end) and
then its Content Credentials and XMP are read; nothing is stored. Old e-mail links (``/verify?token=…``) moved to
``/confirm-email`` and are sent on there.
"""

from __future__ import annotations

from urllib.parse import urlencode

from babel import Locale
from nicegui import context, events, ui
from starlette.responses import RedirectResponse

from components import auth, blocking
from components.file_drop import FileDrop
from components.forms import Banner
from components.frame import frame
from components.text import Text, heading
from rupali import dates, provenance, runtime
from rupali.imaging import InvalidImage
from rupali.provenance import Inspection
from rupali.services import abuse

TITLE = "Check an image"


def create() -> None:
    @ui.page("/verify")
    async def verify_page(token: str = "") -> RedirectResponse | None:
        if token:  # a confirmation link mailed before the page moved
            return RedirectResponse(f"/confirm-email?{urlencode({'token': token})}", status_code=307)
        async with frame(TITLE):
            Checker()
        return None


class Checker:
    """The drop zone, and what the last file checked says."""

    def __init__(self) -> None:
        settings = runtime.current().settings
        self.max_bytes = settings.upload_max_mb * 1024 * 1024
        self.max_pixels = settings.upload_max_megapixels * 1_000_000
        self.locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        self.busy = False
        with ui.element("section").classes("r-verify"):
            heading(TITLE)
            ui.label("See whether an image carries Content Credentials (C2PA) or an IPTC digital source type: "
                     "whether it is AI-generated, who signed it and when, with which tool and model, and whether "
                     "the signature still matches the file. The file is checked in memory and never stored."
                     ).classes("r-muted")
            self.banner = Banner()
            FileDrop("Choose an image to check", max_bytes=self.max_bytes, on_upload=self._check,
                     on_refused=self.banner.error).classes("w-full")
            self.result = ui.element("div").classes("r-verify-result").props('aria-live="polite"')

    async def _check(self, event: events.UploadEventArguments) -> None:
        if self.busy:  # one file at a time: a request carrying many parts gets one check, not hundreds
            return
        self.busy = True
        try:
            await self._examine(event)
        finally:
            self.busy = False

    async def _examine(self, event: events.UploadEventArguments) -> None:
        current = runtime.current()
        viewer = auth.viewer()
        self.result.clear()
        try:
            await abuse.checked(abuse.check_image_check, current.settings, viewer.user.id if viewer else None,
                                auth.client_ip())
        except abuse.Refused as exc:
            self.banner.error(str(exc))
            return
        data = await event.file.read()
        try:
            found = await blocking.io_bound(provenance.examine, current.credentials, data,
                                            max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        except InvalidImage as exc:
            self.banner.error(str(exc))
            return
        self.banner.clear()
        with self.result:
            _show(found, str(event.file.name or "the file")[:200], self.locale)


def _show(found: Inspection, name: str, locale: Locale) -> None:
    # Green only for what this installation can vouch for: its own certificate, still valid, on an unchanged file.
    good = found.has_credentials and found.intact and found.own and not found.credential_problems
    bad = found.has_credentials and not found.intact
    Text("h2", f"Result for {name}").classes("r-card-title")
    verdict = ui.label(found.verdict()).classes("r-banner")
    if good:
        verdict.classes("r-banner--success")
    elif bad:
        verdict.classes("r-banner--error")
    else:
        verdict.classes("r-banner--note")
    with ui.element("dl").classes("r-params"):
        for label, value in _rows(found, locale):
            Text("dt", label)
            Text("dd", value)
    if found.problems:
        Text("h3", "What does not check out").classes("r-field-label")
        with ui.element("ul").classes("r-verify-problems"):
            for problem in found.problems[:20]:
                Text("li", problem)


def _rows(found: Inspection, locale: Locale) -> list[tuple[str, str]]:
    rows: list[tuple[str, str | None]] = [
        ("File", f"{found.format} · {found.width}×{found.height}"),
        ("Content Credentials", ("present, but they cannot be read" if found.error else "present")
         if found.has_credentials else "none"),
        ("Made", found.source_label),
        ("Tool and model", found.software_agent),
        ("Made with", found.claim_generator),
        ("Signed by", " · ".join(filter(None, (found.signer, found.issuer))) or None),
        ("Signed on" if found.signed_at and found.own else "Date in the manifest",
         dates.moment(found.signed_at, locale) if found.signed_at else None),
        ("Signature and pixels", ("intact" if found.intact else "do not match: changed after signing")
         if found.has_credentials and not found.error else None),
        ("Signer", ("this installation's own certificate" if found.own else
                    "an identity this installation cannot confirm") if found.intact else None),
        ("Certificate", "; ".join(found.credential_problems) if found.credential_problems else None),
        ("XMP digital source type", found.xmp_source_type),
    ]
    return [(label, value) for label, value in rows if value]
