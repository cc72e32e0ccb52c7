"""The account page: profile, e-mail address, password and sign-in sessions."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from nicegui import context, events, ui

from components import auth, blocking
from components.choice_group import ChoiceGroup
from components.file_drop import FileDrop
from components.forms import Banner, text_input
from components.frame import frame, initials, sign_out
from components.picture import Picture
from components.text import heading, set_attributes
from rupali import dates
from rupali.config import get_settings
from rupali.db import transact
from rupali.imaging import InvalidImage
from rupali.models import ApiKey, ApiKeyScope, AuthSession, User
from rupali.services import accounts, api_keys, profile, sessions, users
from rupali.services.sessions import SignedIn
from rupali.storage import from_settings as storage_from_settings


def create() -> None:
    @ui.page("/account")
    async def account_page() -> None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        async with frame("Your account", active="/account"):
            heading("Your account")
            with ui.element("div").classes("r-settings"):
                _profile_section(viewer.user)
                _email_section(viewer.user)
                _password_section(viewer.user)
                _privacy_section(viewer.user)
                await _api_keys_section(viewer)
                await _sessions_section(viewer)


def _section(title: str, anchor: str) -> ui.element:
    section = set_attributes(ui.element("section").classes("r-panel"), id=anchor, aria_label=title)
    with section:
        heading(title, 2)
    return section


def _profile_section(user: User) -> None:
    with _section("Profile", "profile"):
        banner = Banner()
        with ui.row().classes("items-center gap-4"):
            avatar = Avatar(user)
            with ui.column().classes("gap-2"):
                FileDrop("Choose a picture", max_bytes=profile.MAX_BYTES,
                         on_upload=auth.action(_upload(avatar, banner)), on_refused=banner.error)
                avatar.remove_button = ui.button("Remove picture", on_click=auth.action(_remove(avatar, banner))
                                                 ).props("flat no-caps")
                avatar.paint(user)
        name = text_input("Full name", value=user.full_name, autocomplete="name", max_length=200)

        async def save(signed_in: SignedIn) -> None:
            banner.clear()
            try:
                await blocking.io_bound(transact, accounts.rename, signed_in.user, name.value or "")
            except users.InvalidAccount as exc:
                banner.error(str(exc))
                return
            banner.success("Your name was saved.")

        ui.button("Save name", on_click=auth.action(save)).props("unelevated no-caps")


class Avatar:
    """The profile picture (or initials) and the "Remove picture" button, offered only when there is one."""

    def __init__(self, user: User) -> None:
        self.container = ui.element("div").classes("r-avatar r-avatar--large")
        self.remove_button: ui.button | None = None
        self.paint(user)

    def paint(self, user: User) -> None:
        self.container.clear()
        with self.container:
            if user.avatar_key:
                Picture(f"/media/avatar/{user.id}?v={user.avatar_key.rsplit('/', 1)[-1]}", lazy=False)
            else:
                ui.label(initials(user.full_name)).props('aria-hidden="true"')
        if self.remove_button is not None:
            self.remove_button.set_visibility(bool(user.avatar_key))


def _upload(avatar: Avatar, banner: Banner):
    async def handle(signed_in: SignedIn, event: events.UploadEventArguments) -> None:
        banner.clear()
        data = await event.file.read()
        storage = storage_from_settings(get_settings())
        try:
            user = await blocking.io_bound(transact, profile.set_avatar, storage, signed_in.user, data)
        except InvalidImage as exc:
            banner.error(str(exc))
            return
        avatar.paint(user)
        banner.success("Your picture was updated.")
    return handle


def _remove(avatar: Avatar, banner: Banner):
    async def handle(signed_in: SignedIn) -> None:
        storage = storage_from_settings(get_settings())
        user = await blocking.io_bound(transact, profile.remove_avatar, storage, signed_in.user)
        avatar.paint(user)
        banner.success("Your picture was removed.")
    return handle


def _email_section(user: User) -> None:
    with _section("E-mail address", "email"):
        banner = Banner()
        ui.label(f"Mail goes to {user.email}.")
        new_email = text_input("New e-mail address", kind="email", autocomplete="email", max_length=254)
        password = text_input("Your password", kind="password", autocomplete="current-password", max_length=1024)
        if not user.password_hash:
            password.set_visibility(False)

        async def change(signed_in: SignedIn) -> None:
            banner.clear()
            try:
                await blocking.io_bound(transact, accounts.request_email_change, get_settings(), signed_in.user,
                                        new_email=new_email.value or "", password=password.value or "")
            except (accounts.AccountError, users.InvalidAccount) as exc:
                banner.error(str(exc))
                return
            auth.deliver_mail_soon()
            banner.success("Check the new address for a confirmation link. Until then, mail goes to the old one.")
            password.value = ""

        ui.button("Change e-mail address", on_click=auth.action(change)).props("outline no-caps")


def _password_section(user: User) -> None:
    with _section("Password", "password"):
        banner = Banner()
        current = text_input("Current password", kind="password", autocomplete="current-password", max_length=1024)
        if not user.password_hash:
            current.set_visibility(False)
            ui.label("You sign in with single sign-on; you can also set a password here.").classes("r-muted")
        new = text_input("New password (at least 10 characters)", kind="password", autocomplete="new-password",
                         max_length=1024)

        async def change(signed_in: SignedIn) -> None:
            banner.clear()
            try:
                await blocking.io_bound(transact, accounts.change_password, get_settings(), signed_in.user,
                                        current=current.value or "", new=new.value or "",
                                        keep_session_id=signed_in.session.id)
            except (accounts.AccountError, users.InvalidAccount) as exc:
                banner.error(str(exc))
                return
            auth.deliver_mail_soon()
            current.value = new.value = ""
            banner.success("Your password was changed. Your other sessions were signed out.")

        ui.button("Change password", on_click=auth.action(change)).props("outline no-caps")


def _privacy_section(user: User) -> None:
    with _section("Image files", "files"):
        ui.label("PNG downloads carry your prompt and settings in the file (the AUTOMATIC1111 “parameters” text), "
                 "so other tools can read them. Turn this off if the prompt should not travel with the file."
                 ).classes("r-muted")

        async def toggle(signed_in: SignedIn, event: events.ValueChangeEventArguments) -> None:
            await blocking.io_bound(transact, users.set_strip_metadata, signed_in.user, not event.value)
            ui.notify("Downloads include the prompt." if event.value else "Downloads leave out the prompt.")

        ui.switch("Include prompt and settings in downloaded PNGs", value=not user.strip_metadata,
                  on_change=auth.action(toggle))


# What a new key may do, and for how long: the choices offered when creating one.
SCOPE_CHOICES = {ApiKeyScope.GENERATE.value: "Read and generate", ApiKeyScope.READ.value: "Read only"}
SCOPE_TEXT = {ApiKeyScope.GENERATE: "read and generate", ApiKeyScope.READ: "read only"}
EXPIRY_CHOICES = {"7": "7 days", "30": "30 days", "90": "90 days", "365": "1 year", "never": "Never"}
DEFAULT_EXPIRY = "90"  # a forgotten key stops working by itself; scripts that need longer can choose it


async def _api_keys_section(viewer: SignedIn) -> None:
    with _section("API keys", "api-keys"):
        ui.markdown("Use the REST API with `Authorization: Bearer <key>`. The documentation is at "
                    "[/api/docs](/api/docs). A key is shown once, when you create it. A read-only key can list "
                    "and download your images but not start generations or change anything.").classes("r-muted")
        banner = Banner()
        listing = ui.column().classes("w-full gap-1")
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        name = text_input("Name of the new key", max_length=api_keys.NAME_MAX)
        with ui.row().classes("w-full items-center gap-3"):
            ui.label("Access").classes("r-field-label").props('aria-hidden="true"')
            scope = ChoiceGroup(SCOPE_CHOICES, label="Access", value=ApiKeyScope.GENERATE.value)
        with ui.row().classes("w-full items-center gap-3"):
            ui.label("Expires after").classes("r-field-label").props('aria-hidden="true"')
            expiry = ChoiceGroup(EXPIRY_CHOICES, label="Expires after", value=DEFAULT_EXPIRY)

        def describe(key: ApiKey) -> str:
            """``rk_AbC… · read only · expires 12 Jan 2027 · created … · last used …``."""
            if key.expires_at is None:
                lifetime = "never expires"
            else:
                verb = "expired" if api_keys.is_expired(key) else "expires"
                lifetime = f"{verb} {dates.medium(key.expires_at.date(), locale)}"
            used = f"last used {dates.medium(key.last_used_at.date(), locale)}" if key.last_used_at else "never used"
            return (f"{key.prefix}… · {SCOPE_TEXT[api_keys.scope_of(key)]} · {lifetime} · created "
                    f"{dates.medium(key.created_at.date(), locale)} · {used}")

        async def revoke(signed_in: SignedIn, key_id: uuid.UUID) -> None:
            try:
                await blocking.io_bound(transact, api_keys.revoke, signed_in.user.id, key_id)
            except api_keys.InvalidApiKey as exc:
                banner.error(str(exc))
            await refresh()

        guarded_revoke = auth.action(revoke)

        async def refresh() -> None:
            keys = await blocking.io_bound(transact, api_keys.active, viewer.user.id)
            listing.clear()
            with listing:
                if not keys:
                    ui.label("No keys yet.").classes("r-muted")
                for key in keys:
                    with ui.row().classes("r-session items-center justify-between w-full"):
                        with ui.column().classes("gap-0"):
                            ui.label(key.name).classes("r-session-device")
                            ui.label(describe(key)).classes("r-muted text-sm")
                        set_attributes(ui.button("Revoke", on_click=lambda key_id=key.id: guarded_revoke(key_id))
                                       .props("flat no-caps"), aria_label=f"Revoke {key.name}")

        async def create_key(signed_in: SignedIn) -> None:
            banner.clear()
            days = None if expiry.value == "never" else int(expiry.value or DEFAULT_EXPIRY)
            try:
                key, secret = await blocking.io_bound(transact, api_keys.create, signed_in.user, name.value or "",
                                                      scope=scope.value or ApiKeyScope.GENERATE.value,
                                                      expires_in_days=days)
            except api_keys.InvalidApiKey as exc:
                banner.error(str(exc))
                return
            name.value = ""
            with ui.dialog() as dialog, ui.card().classes("r-key-dialog"):
                heading("Your new API key", 2)
                ui.label("Copy it now: it will not be shown again.")
                ui.label(f"It may {SCOPE_TEXT[api_keys.scope_of(key)]} and "
                         + (f"expires on {dates.medium(key.expires_at.date(), locale)}." if key.expires_at
                            else "never expires."))
                ui.input(value=secret).props('readonly outlined aria-label="API key"').classes("w-full r-mono")
                with ui.row().classes("gap-2"):
                    ui.button("Copy", on_click=lambda: ui.clipboard.write(secret)).props("unelevated no-caps")
                    ui.button("Done", on_click=dialog.close).props("flat no-caps")
            dialog.open()
            await refresh()

        await refresh()
        ui.button("Create key", on_click=auth.action(create_key)).props("outline no-caps")


async def _sessions_section(viewer: SignedIn) -> None:
    with _section("Where you are signed in", "sessions"):
        banner = Banner()
        listing = ui.column().classes("w-full gap-2")

        async def end_one(signed_in: SignedIn, session_id: uuid.UUID) -> None:
            try:
                await blocking.io_bound(transact, sessions.revoke, signed_in.user, session_id)
            except sessions.SessionNotFound:
                banner.error("That session no longer exists.")
            await refresh()

        async def end_others(signed_in: SignedIn) -> None:
            count = await blocking.io_bound(transact, sessions.revoke_others, signed_in.user, signed_in.session.id)
            banner.success("Signed out everywhere else." if count else "You were not signed in anywhere else.")
            await refresh()

        guarded_end_one = auth.action(end_one)

        async def refresh() -> None:
            active = await blocking.io_bound(transact, sessions.active_for, get_settings(), viewer.user)
            listing.clear()
            with listing:
                for record in active:
                    _session_row(record, record.id == viewer.session.id, guarded_end_one)

        await refresh()
        with ui.row().classes("gap-2"):
            ui.button("Sign out all other sessions", on_click=auth.action(end_others)).props("outline no-caps")
            ui.button("Sign out", on_click=sign_out).props("flat no-caps")


def _session_row(record: AuthSession, is_current: bool,
                 end_one: Callable[[uuid.UUID], Awaitable[None]]) -> None:
    with ui.row().classes("r-session items-center justify-between w-full"):
        with ui.column().classes("gap-0"):
            with ui.row().classes("items-center gap-2"):
                ui.label(record.device).classes("r-session-device")
                if is_current:
                    ui.label("This browser").classes("r-badge")
            ui.label(f"Signed in {record.created_at:%b %-d, %Y %H:%M} UTC · last active "
                     f"{record.last_seen_at:%b %-d, %H:%M} UTC · IP {record.ip_address or 'unknown'}"
                     ).classes("r-muted text-sm")
        if not is_current:
            # The device name comes from the browser's user agent: a property, never parsed.
            set_attributes(ui.button("Sign out", on_click=lambda record_id=record.id: end_one(record_id)).props(
                "flat no-caps"), aria_label=f"Sign out {record.device}")
