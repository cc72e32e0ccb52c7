"""The operations views of the admin console: activity charts, generations and failures, scheduled-job runs, the
mail outbox with retry and cancel, and the technical log with filters. The gate answers 404 here to anyone who is
not an administrator, and every action re-checks the role (``admin_action``) and is audited by the service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from babel import Locale
from nicegui import context, ui

from components import blocking, theme
from components.admin_nav import admin_nav
from components.forms import Banner, text_input
from components.frame import frame
from components.tables import table
from components.text import Text, heading, set_attributes
from pages.admin_users import admin_action
from rupali import dates, jobs, runtime
from rupali.db import transact
from rupali.models import GenerationStatus, MailStatus
from rupali.services import operations
from rupali.services.operations import LogFilter, OperationsError
from rupali.services.sessions import SignedIn

ALL = ""


def create() -> None:
    @ui.page("/admin/generations")
    async def generations_page() -> None:
        providers = await blocking.io_bound(transact, operations.providers_used)
        async with frame("Generations · Administration", active="/admin"):
            heading("Generations")
            admin_nav("/admin/generations")
            view = GenerationsView(_locale(), providers)
            await view.refresh()

    @ui.page("/admin/jobs")
    async def jobs_page() -> None:
        async with frame("Scheduled jobs · Administration", active="/admin"):
            heading("Scheduled jobs")
            admin_nav("/admin/jobs")
            view = JobsView(_locale())
            await view.refresh()

    @ui.page("/admin/outbox")
    async def outbox_page() -> None:
        async with frame("Mail outbox · Administration", active="/admin"):
            heading("Mail outbox")
            admin_nav("/admin/outbox")
            view = OutboxView(_locale())
            await view.refresh()

    @ui.page("/admin/log")
    async def log_page() -> None:
        async with frame("Technical log · Administration", active="/admin"):
            heading("Technical log")
            admin_nav("/admin/log")
            view = LogView(_locale())
            await view.refresh()


async def dashboard_section() -> None:
    """The activity charts: generations, active people, errors and p95 latency per day, and the queue right now."""
    data = await blocking.io_bound(transact, operations.dashboard)
    current = runtime.current()
    waiting, running = current.queue.waiting_count, current.queue.running_count
    labels = [day.strftime("%d %b") for day in data.days]
    with set_attributes(ui.element("section").classes("r-panel"), aria_label="Activity"):
        heading(f"Activity, last {len(data.days)} days (UTC)", 2)
        summary = (f"Today: {sum(series[-1] for series in data.generations.values())} generations, "
                   f"{data.active_users[-1]} active people, {data.errors[-1]} errors; "
                   f"queue: {waiting} waiting, {running} running.")
        ui.label(summary).classes("r-muted").mark("activity-summary")
        with ui.element("div").classes("r-chart-grid"):
            _chart("Generations per day", labels, [
                _series(name.capitalize(), values, stack=True) for name, values in data.generations.items()
                if any(values) or name == "succeeded"], kind="bar")
            _chart("Active people per day", labels, [_series("Signed-in people", data.active_users)])
            _chart("Errors per day", labels, [_series("5xx and failed actions", data.errors)], kind="bar")
            _chart("p95 request time (ms)", labels,
                   [_series("95th percentile", [round(value, 1) if value is not None else None
                                                for value in data.p95_ms])])
            _chart("Queue now", ["Waiting", "Running"], [_series("Generations", [waiting, running])], kind="bar")


# --- generations -------------------------------------------------------------------------------------------------

class GenerationsView:
    """Newest generations filtered by status and provider, and the failures of the last 30 days by reason."""

    def __init__(self, locale: Locale, providers: list[str]) -> None:
        self.locale = locale
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Generations"):
            with ui.element("div").classes("r-form-grid"):
                self.status = _select("Status", {ALL: "Any status"} | {s.value: s.value for s in GenerationStatus},
                                      self._changed)
                self.provider = _select("Provider", {ALL: "Any provider"} | {p: p for p in providers},
                                        self._changed)
            self.rows = ui.column().classes("w-full gap-2")
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Failures by reason"):
            heading(f"Failures by reason, last {operations.FAILURE_DAYS} days", 2)
            self.failures = ui.column().classes("w-full gap-2")

    async def _changed(self, _signed_in: SignedIn) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        rows, failures = await blocking.io_bound(transact, _generations, self.status.value or None,
                                                 self.provider.value or None)
        self.rows.clear()
        with self.rows:
            if not rows:
                ui.label("No generations match.").classes("r-muted")
            else:
                with table("Generations", ("Started", "Person", "Provider", "Model", "Status", "Seconds", "Reason")):
                    for row in rows:
                        with ui.element("tr"):
                            Text("td", dates.moment(row.created_at, self.locale))
                            Text("td", row.owner)
                            Text("td", row.provider)
                            Text("td", row.model)
                            Text("td", row.status)
                            Text("td", f"{row.seconds:.1f}" if row.seconds is not None else "—")
                            Text("td", row.error or "—")
        self.failures.clear()
        with self.failures:
            if not failures:
                ui.label("No failures.").classes("r-muted")
                return
            with table("Failures by reason", ("Reason", "Provider", "Count", "Last")):
                for group in failures:
                    with ui.element("tr"):
                        Text("td", group.reason)
                        Text("td", group.provider)
                        Text("td", str(group.count))
                        Text("td", dates.moment(group.last_at, self.locale))


def _generations(session: Any, status: str | None, provider: str | None) -> tuple[list[Any], list[Any]]:
    return operations.generations(session, status=status, provider=provider), operations.failures(session)


# --- scheduled jobs ----------------------------------------------------------------------------------------------

class JobsView:
    """Every scheduled job's runs, newest first, optionally of one job."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Job runs"):
            with ui.element("div").classes("r-form-grid"):
                self.job = _select("Job", {ALL: "Every job"} | {name: name for name in jobs.JOBS}, self._changed)
            self.rows = ui.column().classes("w-full gap-2")

    async def _changed(self, _signed_in: SignedIn) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        runs = await blocking.io_bound(transact, operations.job_runs, job=self.job.value or None)
        self.rows.clear()
        with self.rows:
            if not runs:
                ui.label("No runs recorded yet.").classes("r-muted")
                return
            with table("Job runs", ("Started", "Job", "Trigger", "Result", "Took", "Detail")):
                for record in runs:
                    took = ((record.finished_at - record.started_at).total_seconds()
                            if record.finished_at is not None else None)
                    with ui.element("tr"):
                        Text("td", dates.moment(record.started_at, self.locale))
                        Text("td", record.job)
                        Text("td", record.trigger)
                        Text("td", str(record.status))
                        Text("td", f"{took:.2f} s" if took is not None else "—")
                        Text("td", record.detail or "—")


# --- outbox ------------------------------------------------------------------------------------------------------

class OutboxView:
    """Mail by status, with Retry for failed or cancelled mail and Cancel for mail still waiting."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Outbox"):
            with ui.element("div").classes("r-form-grid"):
                self.status = _select("Status", {ALL: "Any status"} | {s.value: s.value for s in MailStatus},
                                      self._changed)
            self.banner = Banner()
            self.rows = ui.column().classes("w-full gap-2")

    async def _changed(self, _signed_in: SignedIn) -> None:
        await self.refresh()

    async def _retry(self, signed_in: SignedIn, message_id: int) -> None:
        await self._act(operations.retry_mail, signed_in, message_id, "queued again")

    async def _cancel(self, signed_in: SignedIn, message_id: int) -> None:
        await self._act(operations.cancel_mail, signed_in, message_id, "cancelled")

    async def _act(self, work: Callable[..., Any], signed_in: SignedIn, message_id: int, done: str) -> None:
        try:
            await blocking.io_bound(transact, work, signed_in.user, message_id)
        except OperationsError as exc:
            self.banner.error(str(exc))
        else:
            self.banner.success(f"Message {message_id} {done}.")
        await self.refresh()

    async def refresh(self) -> None:
        messages = await blocking.io_bound(transact, operations.outbox, status=self.status.value or None)
        self.rows.clear()
        with self.rows:
            if not messages:
                ui.label("No mail matches.").classes("r-muted")
                return
            with table("Outbox", ("Queued", "To", "Subject", "Status", "Attempts", "Last error", "Actions")):
                for message in messages:
                    with ui.element("tr"):
                        Text("td", dates.moment(message.created_at, self.locale))
                        Text("td", message.recipient)
                        Text("td", message.subject)
                        Text("td", str(message.status))
                        Text("td", str(message.attempts))
                        Text("td", message.last_error or "—")
                        with ui.element("td"), ui.row().classes("gap-2 no-wrap"):
                            status = str(message.status)
                            # One checked action per row: each re-validates the session when pressed.
                            if status in (MailStatus.FAILED, MailStatus.CANCELLED):
                                _button("Retry", f"Retry mail {message.id} to {message.recipient}", admin_action(
                                    lambda signed_in, number=message.id: self._retry(signed_in, number)))
                            if status in (MailStatus.QUEUED, MailStatus.FAILED):
                                _button("Cancel", f"Cancel mail {message.id} to {message.recipient}", admin_action(
                                    lambda signed_in, number=message.id: self._cancel(signed_in, number)))


# --- technical log -----------------------------------------------------------------------------------------------

class LogView:
    """The technical log, newest first, filtered by kind, status, route, person, address or errors only."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Technical log"):
            ui.label("One row per request and page view, kept for the technical-log retention period. Routes are "
                     "templates: no query strings, no typed text.").classes("r-muted")
            with ui.element("div").classes("r-form-grid"):
                self.kind = _select("Kind", {ALL: "Every kind"} | {k: k for k in operations.REQUEST_KINDS},
                                    self._changed)
                self.status = _select("Status", {ALL: "Any status"} | {c: c for c in operations.STATUS_CLASSES},
                                      self._changed)
                self.route = text_input("Route contains", max_length=200)
                self.email = text_input("Person's e-mail", max_length=254)
                self.ip = text_input("IP address", max_length=64)
                self.errors = ui.checkbox("Errors only")
            ui.button("Apply filters", on_click=admin_action(self._changed)).props("unelevated no-caps")
            self.rows = ui.column().classes("w-full gap-2")

    async def _changed(self, _signed_in: SignedIn) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        filters = LogFilter(kind=self.kind.value or None, status_class=self.status.value or None,
                            route=(self.route.value or "").strip() or None,
                            email=(self.email.value or "").strip() or None,
                            ip=(self.ip.value or "").strip() or None, errors_only=bool(self.errors.value))
        rows = await blocking.io_bound(transact, operations.technical_log, filters)
        self.rows.clear()
        with self.rows:
            if not rows:
                ui.label("No requests match.").classes("r-muted")
                return
            with table("Technical log", ("When (UTC)", "Request", "Status", "ms", "Client", "Person", "Request id",
                                         "Error")):
                for row in rows:
                    with ui.element("tr"):
                        Text("td", f"{row.at:%Y-%m-%d %H:%M:%S}").classes("r-nowrap")
                        Text("td", f"{row.kind} · {row.method} {row.route}".replace(" ·  ", " · "))
                        Text("td", str(row.status) if row.status else "—")
                        Text("td", f"{row.duration_ms:.1f}").classes("r-nowrap")
                        Text("td", " · ".join(part for part in (row.ip, row.client) if part) or "—")
                        Text("td", row.person or "—")
                        Text("td", row.request_id or "—").classes("r-mono")
                        Text("td", row.error or "—")


# --- helpers -------------------------------------------------------------------------------------------------------

def _locale() -> Locale:
    return dates.visitor_locale(context.client.request.headers.get("accept-language"))


def _select(label: str, options: dict[str, str], changed: Callable[..., Any]) -> ui.select:
    return ui.select(options, label=label, value=ALL, on_change=admin_action(changed)).props(
        "outlined stack-label").classes("w-full")


def _button(text: str, label: str, handler: Callable[[], Any]) -> ui.button:
    return set_attributes(ui.button(text, on_click=handler).props("outline no-caps dense"), aria_label=label)


def _series(name: str, values: list[Any], *, stack: bool = False) -> dict[str, Any]:
    return {"name": name, "data": values, **({"stack": "total"} if stack else {})}


def _chart(title: str, labels: list[str], series: list[dict[str, Any]], *, kind: str = "line") -> None:
    """One chart with a visible title; the figures are also in the summary line and the views below."""
    with set_attributes(ui.element("figure").classes("r-chart"), aria_label=title):
        Text("figcaption", title).classes("r-chart-title")
        ui.echart({
            "color": list(theme.CHART_COLOURS),
            "tooltip": {"trigger": "axis"},
            "legend": {"show": len(series) > 1, "bottom": 0, "textStyle": {"color": theme.CHART_TEXT}},
            "grid": {"left": 40, "right": 12, "top": 12, "bottom": 48 if len(series) > 1 else 24},
            "xAxis": {"type": "category", "data": labels, "axisLabel": {"color": theme.CHART_TEXT}},
            "yAxis": {"type": "value", "minInterval": 1, "axisLabel": {"color": theme.CHART_TEXT},
                      "splitLine": {"lineStyle": {"color": theme.CHART_GRID}}},
            "series": [{"type": kind, **item} for item in series],
        }).classes("r-chart-canvas")
