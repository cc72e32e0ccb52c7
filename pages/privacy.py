"""The privacy center: what Rupali holds about me and when it goes, my download, my choices, my requests, deletion."""

from __future__ import annotations

from collections.abc import Callable

from babel import Locale
from nicegui import context, events, ui

from components import auth, blocking
from components.forms import Banner, text_input
from components.frame import frame, sign_out
from components.tables import table
from components.text import Text, heading, set_attributes
from pages import deletion as deletion_page
from rupali import dates
from rupali.clock import now
from rupali.config import get_settings
from rupali.db import transact
from rupali.models import ConsentKind, DataExport, ExportStatus, PrivacyRequest, RequestStatus, User
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure
from rupali.services import deletion, exports, preferences, privacy_center, privacy_requests
from rupali.services.sessions import SignedIn

POLL_SECONDS = 1.0  # how often a running export's progress is read
JUMPS = (("Download", "download"), ("Your data", "data"), ("Choices", "choices"), ("Requests", "requests"),
         ("Delete account", "delete"), ("Your rights", "rights"))


def create() -> None:
    @ui.page("/privacy")
    async def privacy_page() -> None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        settings = get_settings()
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        data = await blocking.io_bound(transact, _load, settings, viewer.user)
        async with frame("Privacy center", active="/privacy"):
            heading("Privacy center")
            ui.label("Everything Rupali holds about you, when each kind of it is deleted, and every control the "
                     "privacy policy promises: download it, delete it, choose what you receive.").classes("r-lead")
            with ui.element("nav").classes("r-privacy-jump").props('aria-label="Privacy center sections"'):
                for label, anchor in JUMPS:
                    ui.link(label, f"#{anchor}")
            with ui.element("div").classes("r-settings"):
                ExportPanel(viewer.user, data.export, locale)
                _data_section(data.categories, locale)
                _choices_section(viewer.user, settings.analytics_enabled)
                _requests_section(data.requests, locale)
                _delete_section(viewer.user, settings.retention_account_grace_days, locale)
                _rights_section()


class _Loaded:
    def __init__(self, categories: list[privacy_center.Category], export: DataExport | None,
                 requests: list[PrivacyRequest]) -> None:
        self.categories, self.export, self.requests = categories, export, requests


def _load(session: object, settings: object, user: User) -> _Loaded:
    return _Loaded(privacy_center.summary(session, settings, user.id),  # type: ignore[arg-type]
                   exports.latest(session, user), privacy_requests.mine(session, user))  # type: ignore[arg-type]


def _section(title: str, anchor: str, intro: str | None = None) -> ui.element:
    section = set_attributes(ui.element("section").classes("r-panel"), id=anchor, aria_label=title)
    with section:
        heading(title, 2)
        if intro:
            ui.label(intro).classes("r-muted")
    return section


# --- what we hold --------------------------------------------------------------------------------------------------

def _data_section(categories: list[privacy_center.Category], locale: Locale) -> None:
    with _section("What Rupali holds about you", "data",
                  "Counted from the database just now, grouped as in the privacy policy's retention table, with "
                  "the rule that deletes each kind."):
        for category in categories:
            with ui.element("div").classes("r-holding-group"):
                with ui.row().classes("items-baseline justify-between w-full no-wrap gap-2"):
                    heading(category.title, 3)
                    ui.label(_count(category.count)).classes("r-badge")
                ui.label(privacy_center.rule_sentence(category.holdings[0])).classes("r-muted text-sm")
                with ui.element("ul").classes("r-holdings"):
                    for holding in category.holdings:
                        _holding(holding, locale)


def _holding(holding: privacy_center.Holding, locale: Locale) -> None:
    with ui.element("li").classes("r-holding"):
        with ui.row().classes("items-baseline justify-between w-full no-wrap gap-2"):
            ui.label(holding.holds).classes("r-holding-what")
            ui.label(_count(holding.count)).classes("r-holding-count")
        where = "database and media files" if holding.has_files else "database"
        facts = [f"Stored in the {where}", "in your download" if holding.exported else "not in your download"]
        if holding.erasure == Erasure.ANONYMIZE:
            facts.append("kept without your name after erasure")
        ui.label(" · ".join(facts)).classes("r-muted text-sm")
        if holding.next_deletion_at is not None:
            when = dates.medium(holding.next_deletion_at.date(), locale)
            if holding.rule.key == RetentionKey.CONTENT or holding.table == "data_export":
                text = (f"{holding.next_deletion_count} expire; the first on {when}."
                        if holding.next_deletion_count != 1 else f"1 expires on {when}.")
            else:
                text = f"The oldest goes on {when}; newer ones follow as they reach the period."
            ui.label(text).classes("r-timeline text-sm")


def _count(count: int) -> str:
    return "none" if count == 0 else f"{count:,}"


# --- download ------------------------------------------------------------------------------------------------------

class ExportPanel:
    """Request, watch and download the archive of everything Rupali holds about the person."""

    def __init__(self, user: User, export: DataExport | None, locale: Locale) -> None:
        self.user, self.locale = user, locale
        self.timer: ui.timer | None = None
        with _section("Download my data", "download",
                      "One ZIP file with every record about you (JSON and CSV), every image with its prompt and "
                      "settings, and every upload, with a README that explains each file. Building it takes a "
                      "moment; we also mail you when it is ready. The file can be downloaded for 7 days, and you "
                      "can ask for one a day.") as self.section:
            self.banner = Banner()
            self.body = ui.column().classes("w-full gap-2")
        self.show(export)

    def show(self, export: DataExport | None) -> None:
        self.body.clear()
        with self.body:
            if export is None or export.status == ExportStatus.EXPIRED:
                self._request_button()
            elif export.status in (ExportStatus.QUEUED, ExportStatus.RUNNING):
                self._progress(export)
            elif export.status == ExportStatus.READY:
                self._ready(export)
            else:
                ui.label("The last download could not be built. Please try again; if it fails again, write to us."
                         ).classes("r-banner r-banner--error")
                self._request_button()
        busy = export is not None and export.status in (ExportStatus.QUEUED, ExportStatus.RUNNING)
        if busy and self.timer is None:
            with self.section:  # not in the slot of the button that asked: ``clear()`` above deleted it
                self.timer = ui.timer(POLL_SECONDS, self._poll)
        elif not busy and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _request_button(self) -> None:
        ui.button("Prepare my download", icon="download", on_click=auth.action(self._request)).props(
            "unelevated no-caps")

    def _progress(self, export: DataExport) -> None:
        percent = round((export.progress or 0) * 100)
        label = "Waiting to start…" if export.status == ExportStatus.QUEUED else f"Building your download: {percent}%"
        ui.label(label).classes("r-export-status").props('aria-live="polite"')
        bar = ui.linear_progress(value=export.progress or 0, show_value=False, size="10px").classes("r-progress")
        set_attributes(bar, role="progressbar", aria_label="Download being built", aria_valuemin=0,
                       aria_valuemax=100, aria_valuenow=percent)

    def _ready(self, export: DataExport) -> None:
        size = _size(export.bytes or 0)
        until = dates.moment(export.expires_at, self.locale) if export.expires_at else "for 7 days"
        ui.label(f"Your download is ready: {export.files or 0} files, {size}. Available until {until}.").classes(
            "r-export-status").props('aria-live="polite"')
        link = ui.link("Download my data (ZIP)", f"/privacy/exports/{export.id}/download").classes("r-button-link")
        set_attributes(link, download="")
        next_at = export.requested_at + exports.MIN_INTERVAL
        if next_at <= now():
            ui.button("Prepare a new download", on_click=auth.action(self._request)).props("outline no-caps")
        else:
            ui.label(f"You can ask for a fresh one from {dates.moment(next_at, self.locale)}.").classes(
                "r-muted text-sm")

    async def _request(self, signed_in: SignedIn) -> None:
        self.banner.clear()
        try:
            export = await blocking.io_bound(transact, exports.request_export, get_settings(), signed_in.user)
        except exports.ExportError as error:
            self.banner.error(str(error))
            return
        exports.start_soon(get_settings(), export.id)
        self.show(export)

    async def _poll(self) -> None:
        export = await blocking.io_bound(transact, exports.latest, self.user)
        self.show(export)  # the status line is a live region: "Your download is ready" is announced from there


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count} bytes"


# --- choices -------------------------------------------------------------------------------------------------------

def _choices_section(user: User, analytics_configured: bool) -> None:
    with _section("Consents and e-mail preferences", "choices",
                  "Change these at any time; every change is logged with the time and the policy version. "
                  "Mails about your account and its security (sign-in links, password changes, your download) "
                  "are always sent."):
        current = preferences.current(user)
        for kind, preference in preferences.PREFERENCES.items():
            if kind is ConsentKind.ANALYTICS and not analytics_configured:
                ui.label("This installation runs no usage statistics, so there is nothing to switch off.").classes(
                    "r-muted text-sm")
                continue
            with ui.column().classes("gap-0"):
                ui.switch(preference.label, value=current[kind], on_change=auth.action(_toggle(kind)))
                ui.label(preference.description).classes("r-muted text-sm r-switch-help")


def _toggle(kind: ConsentKind) -> Callable[[SignedIn, events.ValueChangeEventArguments], object]:
    async def toggle(signed_in: SignedIn, event: events.ValueChangeEventArguments) -> None:
        await blocking.io_bound(transact, preferences.set_preference, get_settings(), signed_in.user, kind,
                                bool(event.value), source="privacy-center")
        label = preferences.PREFERENCES[kind].label
        ui.notify(f"{label}: {'on' if event.value else 'off'}. Saved.")
        if kind is ConsentKind.ANALYTICS:
            # The tracker obeys this flag at once; the next page leaves the script out altogether.
            ui.run_javascript("localStorage.removeItem('umami.disabled')" if event.value
                              else "localStorage.setItem('umami.disabled', '1')")

    return toggle


# --- requests ------------------------------------------------------------------------------------------------------

def _requests_section(requests: list[PrivacyRequest], locale: Locale) -> None:
    with _section("My requests", "requests",
                  "Every data-protection request you made, with the date we must answer by. Requests you send by "
                  "mail are added here by the operator."):
        if not requests:
            ui.label("No requests yet.").classes("r-muted")
            return
        with table("My requests", ("Request", "Received", "Answer due", "Status", "Outcome")):
            for request in requests:
                with ui.element("tr"):
                    Text("td", privacy_requests.LABELS.get(request.kind, str(request.kind)))
                    Text("td", dates.medium(request.received_at.date(), locale))
                    Text("td", dates.medium(request.due_at.date(), locale))
                    Text("td", _status(request))
                    Text("td", request.outcome or "—")


def _status(request: PrivacyRequest) -> str:
    if request.status == RequestStatus.OPEN:
        return "Overdue" if request.due_at < now() else "Open"
    return {RequestStatus.DONE: "Done", RequestStatus.REFUSED: "Refused",
            RequestStatus.WITHDRAWN: "Withdrawn"}.get(request.status, str(request.status))


# --- deletion ------------------------------------------------------------------------------------------------------

def _delete_section(user: User, grace_days: int, locale: Locale) -> None:
    grace = (f"Your account is then locked for {grace_days} days, in which you can change your mind by signing in; "
             "after that everything listed above is deleted for good" if grace_days
             else "Everything listed above is then deleted at once")
    with _section("Delete my account", "delete",
                  f"{grace}. Records the law makes us keep (such as payment records) stay, without your name. "
                  "Download your data first if you want to keep it."):
        ui.button("Delete account…", on_click=lambda: _DeleteDialog(user, grace_days, locale).open()).props(
            "outline no-caps color=negative")


class _DeleteDialog:
    def __init__(self, user: User, grace_days: int, locale: Locale) -> None:
        self.locale = locale
        self.has_password = user.password_hash is not None
        with ui.dialog() as self.dialog, ui.card().classes("r-dialog") as self.body:
            heading("Delete your account?", 2)
            ui.label(f"We will delete your account {f'in {grace_days} days' if grace_days else 'now'}. Every "
                     "session and API key stops working at once, and queued generations are cancelled.")
            self.banner = Banner()
            if self.has_password:
                self.confirm = text_input("Your password", kind="password", autocomplete="current-password")
            else:
                self.confirm = text_input("Type your e-mail address to confirm", kind="email")
            with ui.row().classes("justify-end w-full gap-2"):
                ui.button("Keep my account", on_click=self.dialog.close).props("flat no-caps")
                ui.button("Delete my account", on_click=auth.action(self._delete)).props(
                    "unelevated no-caps color=negative")

    def open(self) -> None:
        self.dialog.open()

    async def _delete(self, signed_in: SignedIn) -> None:
        self.banner.clear()
        value = self.confirm.value or ""
        try:
            user = await deletion_page.request(signed_in, password=value if self.has_password else None,
                                               typed_email=None if self.has_password else value)
        except deletion.DeletionError as error:
            self.banner.error(str(error))
            return
        when = dates.moment(user.deletion_due_at, self.locale) if user.deletion_due_at else "now"
        self.body.clear()
        with self.body:
            heading("Your account is scheduled for deletion", 2)
            ui.label(f"It will be deleted on {when}. We sent you a mail with a link to cancel; signing in before "
                     "then also offers to cancel. You are now signed out everywhere.")
            ui.button("OK", on_click=sign_out).props("unelevated no-caps")
        self.dialog.props("persistent")


# --- rights --------------------------------------------------------------------------------------------------------

def _rights_section() -> None:
    settings = get_settings()
    with _section("Your rights", "rights"):
        ui.label("You can correct your name and e-mail address on your account page. For anything this page cannot "
                 "do (a restriction of processing, an objection, a question), write to the operator; the request is "
                 "logged and answered within the legal deadline.").classes("r-muted")
        with ui.element("ul").classes("r-link-list"):
            for label, target in (("Privacy Policy", "/legal/privacy"), ("Cookie Policy", "/legal/cookies"),
                                  ("Terms of Service", "/legal/terms"), ("Sub-processors", "/legal/subprocessors"),
                                  ("Account settings", "/account")):
                with ui.element("li"):
                    ui.link(label, target)
            with ui.element("li"):
                ui.link(f"Write to the operator: {settings.operator_email}", f"mailto:{settings.operator_email}")
            with ui.element("li"):
                ui.link(f"Complain to the supervisory authority: {settings.supervisory_authority_name}",
                        settings.supervisory_authority_url, new_tab=True)
