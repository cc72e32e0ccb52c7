"""The prompt studio: describe an image, pick a model and size, generate, watch the job, keep the results."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

from nicegui import events, run, ui

from components import auth
from components.forms import Banner
from components.frame import frame
from components.image_grid import image_grid
from components.text import heading
from rupali import runtime
from rupali.db import transact
from rupali.generation_queue import JobState
from rupali.imaging import InvalidImage
from rupali.models import Generation, GenerationStatus, Image
from rupali.providers import ModelChoice
from rupali.providers.base import ProviderError
from rupali.services import generation as generations
from rupali.services import uploads
from rupali.services.sessions import SignedIn

PROMPT_MAX = generations.PROMPT_MAX
RECENT = 12
ASPECTS = {(1, 1): "Square", (3, 4): "Portrait", (4, 3): "Landscape", (2, 3): "Portrait", (3, 2): "Landscape",
           (9, 16): "Tall", (16, 9): "Wide"}


@dataclass
class StudioState:
    """Everything the form holds; bound to the inputs."""

    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""
    size: str = ""  # "1024x1024" or "custom"
    width: int = 1024
    height: int = 1024
    steps: int = 20
    guidance: float = 7.0
    count: int = 1
    seed: int | None = None
    lock_seed: bool = False
    upload_id: uuid.UUID | None = None
    strength: float = 0.8
    active: list[uuid.UUID] = field(default_factory=list)


def create() -> None:
    @ui.page("/studio")
    async def studio_page(use: str = "", remix: int = 0) -> None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        current = runtime.current()
        catalogue = await current.providers.catalogue()
        recent = await run.io_bound(transact, generations.recent, viewer.user.id, RECENT)
        images = await run.io_bound(transact, generations.images_of, [g.id for g in recent])
        state = StudioState()
        if catalogue:
            _apply_model(state, catalogue[0])
        if use:
            source = next((g for g in recent if str(g.id) == use), None) or await _load(viewer, use)
            if source is not None:
                _apply_generation(state, source, keep_seed=not remix)
        async with frame("Studio", active="/studio"):
            Studio(viewer, catalogue, state).build(recent, images)


async def _load(viewer: SignedIn, generation_id: str) -> Generation | None:
    try:
        return await run.io_bound(transact, generations.for_user, viewer.user.id, uuid.UUID(generation_id))
    except (ValueError, generations.GenerationNotFound):
        return None


def _apply_model(state: StudioState, choice: ModelChoice) -> None:
    info = choice.info
    state.model = choice.key
    if (state.width, state.height) not in info.sizes and not info.size_rule.allows(state.width, state.height):
        state.width, state.height = info.sizes[0]
    state.size = f"{state.width}x{state.height}" if (state.width, state.height) in info.sizes else "custom"
    state.steps = min(state.steps, info.max_steps) or info.default_steps
    state.guidance = min(state.guidance, info.max_guidance)
    state.count = min(state.count, info.max_images)


def _apply_generation(state: StudioState, generation: Generation, *, keep_seed: bool,
                      seed: int | None = None) -> None:
    """Fill the form from an earlier generation ("use these parameters"; a remix keeps all but the seed)."""
    state.prompt, state.negative_prompt = generation.prompt, generation.negative_prompt
    state.model = f"{generation.provider}:{generation.model}"
    state.width, state.height = generation.width, generation.height
    state.size = f"{generation.width}x{generation.height}"
    state.steps, state.guidance, state.count = generation.steps, generation.guidance, generation.count
    state.seed, state.lock_seed = (seed if seed is not None else generation.seed, True) if keep_seed else (None, False)


class Studio:
    """The studio of one page view."""

    def __init__(self, viewer: SignedIn, catalogue: list[ModelChoice], state: StudioState) -> None:
        self.viewer = viewer
        self.catalogue = {choice.key: choice for choice in catalogue}
        self.state = state
        self.jobs: dict[uuid.UUID, ui.element] = {}

    def build(self, recent: list[Generation], images: dict[uuid.UUID, list[Image]]) -> None:
        with ui.element("div").classes("r-studio"):
            with ui.element("section").classes("r-studio-form").props('aria-label="Describe your image"'):
                self._form()
            with ui.element("section").classes("r-studio-results").props('aria-label="Results"'):
                self.jobs_area = ui.column().classes("w-full gap-4")
                heading("Recent", 2)
                self.recent_area = ui.column().classes("w-full gap-4")
                with self.recent_area:
                    self.empty_note = ui.label("Nothing yet. Your images will appear here.").classes(
                        "r-muted") if not recent else None
                    for generation in recent:
                        self._generation_card(generation, images.get(generation.id, []))
        ui.timer(0.5, self._refresh_jobs)

    # --- the form --------------------------------------------------------------------------------------------------

    def _form(self) -> None:
        state = self.state
        self.banner = Banner()
        if not self.catalogue:
            ui.label("No image generator is available right now. Please try again later.").classes("r-muted")
            return
        prompt = ui.textarea("Prompt", placeholder="A lighthouse on a cliff at golden hour, oil painting").props(
            f"outlined autogrow maxlength={PROMPT_MAX} counter autofocus").classes("w-full").bind_value(state, "prompt")
        prompt.on("keydown.ctrl.enter", self._generate)
        prompt.on("keydown.meta.enter", self._generate)
        with ui.expansion("Negative prompt").classes("w-full r-expansion").bind_value_from(
                state, "negative_prompt", backward=bool):
            ui.textarea("Things to avoid", placeholder="blurry, text, watermark").props(
                f"outlined autogrow maxlength={PROMPT_MAX} counter").classes("w-full").bind_value(
                state, "negative_prompt")

        options = {key: self._model_label(choice) for key, choice in self.catalogue.items()}
        if state.model not in options:
            state.model = next(iter(options))
        model_select = ui.select(options, label="Model").props("outlined").classes("w-full").bind_value(state, "model")
        self.model_note = ui.label().classes("r-muted text-sm")
        self.size_area = ui.column().classes("w-full gap-2")
        self.tuning_area = ui.column().classes("w-full gap-2")
        self.source_area = ui.column().classes("w-full gap-2")

        with ui.row().classes("w-full items-center justify-between r-cost"):
            self.cost_label = ui.label().classes("r-muted")
            ui.label("Ctrl+Enter").classes("r-kbd").props('aria-hidden="true"')
        self.generate_button = ui.button("Generate", on_click=self._generate).props(
            "unelevated no-caps size=lg").classes("w-full")
        self._model_changed(initial=True)  # fills the model-dependent areas above and the cost line
        model_select.on_value_change(lambda _: self._model_changed())

    def _model_label(self, choice: ModelChoice) -> str:
        return choice.info.label if not choice.info.is_ai else f"{choice.info.label} · {choice.provider_label}"

    @property
    def choice(self) -> ModelChoice:
        return self.catalogue[self.state.model]

    def _model_changed(self, initial: bool = False) -> None:
        if self.state.model not in self.catalogue:
            return
        info = self.choice.info
        if not initial:
            _apply_model(self.state, self.choice)
        self.model_note.text = ("Draws procedural sketches on this server. It is not AI and sends nothing anywhere."
                                if not info.is_ai else f"AI model by {self.choice.provider_label}, version "
                                f"{info.version or 'unknown'}.")
        self._size_controls()
        self._tuning_controls()
        self._source_controls()
        self._update_cost()

    def _size_controls(self) -> None:
        info, state = self.choice.info, self.state
        self.size_area.clear()
        with self.size_area:
            options = {f"{w}x{h}": _size_label(w, h) for w, h in info.sizes}
            options["custom"] = "Custom size"
            ui.toggle(options, on_change=lambda e: self._size_picked(e.value)).props(
                'no-caps unelevated toggle-color=primary aria-label="Size"').classes("r-size-toggle").bind_value(
                state, "size")
            with ui.row().classes("w-full gap-2 no-wrap").bind_visibility_from(state, "size",
                                                                              backward=lambda v: v == "custom"):
                rule = info.size_rule
                for attribute, label in (("width", "Width"), ("height", "Height")):
                    ui.number(label, min=rule.minimum, max=rule.maximum, step=rule.multiple, precision=0,
                              on_change=self._update_cost).props("outlined dense").classes("grow").bind_value(
                        state, attribute, forward=lambda v: int(v or 0))

    def _size_picked(self, value: str) -> None:
        if value and value != "custom":
            width, _, height = value.partition("x")
            self.state.width, self.state.height = int(width), int(height)
        self._update_cost()

    def _tuning_controls(self) -> None:
        info, state = self.choice.info, self.state
        self.tuning_area.clear()
        with self.tuning_area:
            with ui.row().classes("w-full gap-3 no-wrap items-end"):
                ui.number("Steps", min=1, max=info.max_steps, step=1, precision=0,
                          on_change=self._update_cost).props("outlined dense").classes("grow").bind_value(
                    state, "steps", forward=lambda v: int(v or 0))
                ui.number("Guidance", min=0, max=info.max_guidance, step=0.5, precision=1).props(
                    "outlined dense").classes("grow").bind_value(state, "guidance", forward=lambda v: float(v or 0))
            most = min(info.max_images, runtime.current().settings.max_images_per_request)
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Images").classes("r-field-label")
                ui.toggle(list(range(1, most + 1)), on_change=self._update_cost).props(
                    'unelevated no-caps aria-label="Number of images"').bind_value(state, "count")
            with ui.row().classes("w-full gap-2 items-center no-wrap"):
                ui.number("Seed", min=0, max=generations.SEED_MAX, step=1, precision=0,
                          placeholder="random").props("outlined dense clearable").classes("grow").bind_value(
                    state, "seed", forward=lambda v: None if v is None else int(v))
                ui.button(icon="casino", on_click=self._new_seed).props(
                    'flat round aria-label="New random seed"').tooltip("New random seed")
                ui.checkbox("Lock").props('aria-label="Keep this seed"').bind_value(state, "lock_seed").tooltip(
                    "Keep this seed for the next generations")

    def _source_controls(self) -> None:
        info, state = self.choice.info, self.state
        self.source_area.clear()
        if not info.img2img:
            state.upload_id = None
            return
        with self.source_area, ui.expansion("Start from an image (optional)").classes("w-full r-expansion"):
            preview = ui.row().classes("items-center gap-3")

            def show() -> None:
                preview.clear()
                if state.upload_id is None:
                    return
                with preview:
                    ui.image(f"/media/uploads/{state.upload_id}").classes("r-source-preview").props(
                        'alt="Source image" fit=contain')
                    ui.button("Remove", on_click=lambda: (setattr(state, "upload_id", None), show())).props(
                        "flat no-caps")

            async def uploaded(signed_in: SignedIn, event: events.UploadEventArguments) -> None:
                data = await event.file.read()
                current = runtime.current()
                try:
                    upload = await run.io_bound(transact, uploads.store, current.storage, current.settings,
                                                signed_in.user, data)
                except InvalidImage as exc:
                    self.banner.error(str(exc))
                    return
                self.banner.clear()
                state.upload_id = upload.id
                show()

            limit = runtime.current().settings.upload_max_mb
            ui.upload(label=f"PNG, JPEG or WebP, up to {limit} MB", auto_upload=True,
                      max_file_size=limit * 1024 * 1024, on_upload=auth.action(uploaded),
                      on_rejected=lambda: self.banner.error(f"That file is larger than {limit} MB.")).props(
                'accept="image/png,image/jpeg,image/webp" flat bordered').classes("r-upload w-full")
            with ui.row().classes("w-full items-center gap-3 no-wrap"):
                ui.label("Strength").classes("r-field-label")
                ui.slider(min=0, max=1, step=0.05).props('label aria-label="Strength"').classes(
                    "grow").bind_value(state, "strength")
            show()

    def _new_seed(self) -> None:
        self.state.seed = secrets.randbelow(generations.SEED_MAX + 1)
        self.state.lock_seed = True

    def _update_cost(self, *_: object) -> None:
        state = self.state
        if state.model not in self.catalogue:
            return
        credits = runtime.current().credits.quote(model_key=state.model, width=state.width, height=state.height,
                                                  steps=state.steps, count=state.count)
        self.cost_label.text = "Cost: free" if credits == 0 else f"Cost: {credits} credits"

    # --- generating ------------------------------------------------------------------------------------------------

    async def _generate(self) -> None:
        await auth.action(self._submit)()

    async def _submit(self, signed_in: SignedIn) -> None:
        state = self.state
        self.banner.clear()
        current = runtime.current()
        try:
            choice = await current.providers.find(state.model)
            form = generations.GenerationForm(
                prompt=state.prompt or "", negative_prompt=state.negative_prompt or "", model=state.model,
                width=int(state.width or 0), height=int(state.height or 0), steps=state.steps,
                guidance=state.guidance, count=int(state.count or 1), seed=state.seed if state.lock_seed else None,
                upload_id=state.upload_id, strength=state.strength if state.upload_id else None)
            generation = await run.io_bound(transact, generations.submit, current.settings, signed_in.user, choice,
                                            form, current.credits)
        except generations.InvalidGeneration as exc:
            self.banner.error(str(exc))
            return
        except ProviderError as exc:
            self.banner.error(exc.user_message)
            return
        if not state.lock_seed:
            state.seed = generation.seed  # show the seed that was used
        if generation.status == GenerationStatus.QUEUED:
            current.queue.submit(generation.id, signed_in.user.id)
        with self.jobs_area:
            card = ui.element("div").classes("r-job")
        card.move(self.jobs_area, target_index=0)
        if self.empty_note is not None:
            self.empty_note.delete()
            self.empty_note = None
        live = current.queue.state(generation.id)
        if live is not None:
            self.jobs[generation.id] = card
            self._paint_live(card, generation.id, live)  # at once, not at the next refresh tick
        else:
            self._paint_job(card, generation, [])  # blocked before it was queued

    async def _refresh_jobs(self) -> None:
        queue = runtime.current().queue
        for generation_id, card in list(self.jobs.items()):
            live = queue.state(generation_id)
            if live is not None:
                self._paint_live(card, generation_id, live)
                continue
            generation = await run.io_bound(transact, generations.for_user, self.viewer.user.id, generation_id)
            if not generation.finished:
                continue  # between the queue and the database: look again next tick
            images = await run.io_bound(transact, generations.images_of, [generation_id])
            del self.jobs[generation_id]
            self._paint_job(card, generation, images[generation_id])

    def _paint_live(self, card: ui.element, generation_id: uuid.UUID, live: JobState) -> None:
        card.clear()
        with card, ui.row().classes("w-full items-center justify-between no-wrap gap-3"):
            with ui.column().classes("grow gap-1"):
                if live.status == GenerationStatus.QUEUED:
                    ahead = live.position or 0
                    ui.label("Waiting to start" + (f" — {ahead} ahead of you" if ahead else " — you are next"))
                    ui.linear_progress(show_value=False).props("indeterminate rounded color=grey-6")
                elif live.progress is not None:
                    ui.label(f"Generating — {round(live.progress * 100)}%")
                    ui.linear_progress(value=live.progress, show_value=False).props('rounded aria-label="Progress"')
                else:
                    ui.label(f"Generating — {int(live.elapsed or 0)} s")
                    ui.linear_progress(show_value=False).props("indeterminate rounded")
            ui.button("Cancel", on_click=lambda: self._cancel(generation_id)).props("flat no-caps")

    def _paint_job(self, card: ui.element, generation: Generation, images: list[Image]) -> None:
        card.clear()
        with card:
            self._generation_body(generation, images)

    async def _cancel(self, generation_id: uuid.UUID) -> None:
        async def cancel(signed_in: SignedIn) -> None:
            try:
                await runtime.current().queue.cancel(signed_in.user.id, generation_id)
            except generations.GenerationNotFound:
                self.banner.error("That generation no longer exists.")
        await auth.action(cancel)()

    # --- results -----------------------------------------------------------------------------------------------------

    def _generation_card(self, generation: Generation, images: list[Image]) -> None:
        with ui.element("div").classes("r-job"):
            self._generation_body(generation, images)

    def _generation_body(self, generation: Generation, images: list[Image]) -> None:
        with ui.row().classes("w-full items-start justify-between no-wrap gap-3"):
            with ui.column().classes("gap-0 grow r-job-head"):
                ui.label(generation.prompt).classes("r-job-prompt")
                meta = f"{generation.model_label or generation.model} · {generation.width}×{generation.height} · " \
                       f"seed {generation.seed}"
                if generation.duration_ms is not None and generation.status == GenerationStatus.SUCCEEDED:
                    meta += f" · {generation.duration_ms / 1000:.1f} s"
                ui.label(meta).classes("r-muted text-sm")
            with ui.row().classes("gap-1 no-wrap"):
                ui.button(icon="tune", on_click=lambda: self._use(generation, keep_seed=True)).props(
                    'flat round dense aria-label="Use these parameters"').tooltip("Use these parameters")
                ui.button(icon="shuffle", on_click=lambda: self._use(generation, keep_seed=False)).props(
                    'flat round dense aria-label="Remix: same parameters, new seed"').tooltip("Remix (new seed)")
        if generation.status in {GenerationStatus.FAILED, GenerationStatus.BLOCKED, GenerationStatus.CANCELLED}:
            ui.label(generation.error or "This generation did not finish.").classes(
                "r-banner r-banner--error" if generation.status != GenerationStatus.CANCELLED else "r-muted")
        if images:
            image_grid(images, on_use=lambda image: self._use(generation, keep_seed=True, seed=image.seed))
        elif generation.error and generation.status == GenerationStatus.SUCCEEDED:
            ui.label(generation.error).classes("r-muted")

    def _use(self, generation: Generation, *, keep_seed: bool, seed: int | None = None) -> None:
        _apply_generation(self.state, generation, keep_seed=keep_seed, seed=seed)
        if self.state.model in self.catalogue:
            self._model_changed(initial=True)
        ui.notify("Parameters loaded into the form" if keep_seed else "Remix loaded: same parameters, new seed")
        ui.run_javascript("window.scrollTo({top: 0, behavior: 'smooth'})")


def _size_label(width: int, height: int) -> str:
    from math import gcd

    divisor = gcd(width, height)
    ratio = (width // divisor, height // divisor)
    name = ASPECTS.get(ratio, f"{ratio[0]}:{ratio[1]}")
    return f"{name} {width}×{height}"
