"""The prompt studio: describe an image, pick a model and size, generate, watch the job, keep the results."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import field

from nicegui import binding, events, ui

from components import auth, blocking, lazy
from components.announcer import Announcer
from components.choice_group import ChoiceGroup
from components.file_drop import FileDrop
from components.forms import Banner
from components.frame import frame
from components.live_job import LiveJob
from components.picture import Picture
from components.size_picker import SizePicker
from components.text import heading, set_attributes
from components.tile_grid import TileGrid, tile
from rupali import provenance, runtime
from rupali.db import transact
from rupali.generation_queue import JobState
from rupali.imaging import InvalidImage
from rupali.models import Generation, GenerationStatus, Image
from rupali.providers import ImageProviders, ModelChoice
from rupali.providers.base import ProviderError
from rupali.services import abuse, feedback, uploads
from rupali.services import generation as generations
from rupali.services.credits import InsufficientCredits
from rupali.services.sessions import SignedIn

PROMPT_MAX = generations.PROMPT_MAX
RECENT = 12
EXAMPLE_PROMPTS = (
    "A lighthouse on a cliff at golden hour, oil painting",
    "A red fox in a snowy birch forest, soft watercolour",
    "A neon-lit street market in the rain at night",
    "A cosy reading nook with plants and warm lamplight",
)


@binding.bindable_dataclass
class StudioState:
    """Everything the form holds, bound to the inputs (bindable: a change reaches them at once, nothing is polled)."""

    prompt: str | None = ""
    negative_prompt: str | None = ""
    model: str = ""
    width: int = 1024
    height: int = 1024
    steps: int | None = 20
    guidance: float | None = 7.0
    count: int = 1
    seed: int | None = None  # shown only while locked; unlocked means "random"
    lock_seed: bool = False
    last_seed: int | None = None  # the seed of the last generation, offered as a hint
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
        state = StudioState()
        if catalogue:
            _apply_model(state, catalogue[0])
        if use and (source := await _load(viewer, use)) is not None:
            _apply_generation(state, source, keep_seed=not remix)
        async with frame("Studio", active="/studio"):
            studio = Studio(viewer, catalogue, state)
            studio.build()
        # The form goes out at once, without a database trip; the balance, the last seed and the recent results
        # follow over the live connection once it is open.
        await studio.show_opening()


async def _load(viewer: SignedIn, generation_id: str) -> Generation | None:
    try:
        return await blocking.io_bound(transact, generations.for_user, viewer.user.id, uuid.UUID(generation_id))
    except (ValueError, generations.GenerationNotFound):
        return None


def _apply_model(state: StudioState, choice: ModelChoice) -> None:
    info = choice.info
    state.model = choice.key
    if (state.width, state.height) not in info.sizes and not info.size_rule.allows(state.width, state.height):
        state.width, state.height = info.sizes[0]
    state.steps = min(state.steps or info.default_steps, info.max_steps)
    state.guidance = min(info.default_guidance if state.guidance is None else state.guidance, info.max_guidance)
    state.count = min(state.count, info.max_images)


def _apply_generation(state: StudioState, generation: Generation, *, keep_seed: bool,
                      seed: int | None = None) -> None:
    """Fill the form from an earlier generation ("use these parameters"; a remix keeps all but the seed)."""
    state.prompt, state.negative_prompt = generation.prompt, generation.negative_prompt
    state.model = f"{generation.provider}:{generation.model}"
    state.width, state.height = generation.width, generation.height
    state.steps, state.guidance, state.count = generation.steps, generation.guidance, generation.count
    state.seed, state.lock_seed = (seed if seed is not None else generation.seed, True) if keep_seed else (None, False)


class Studio:
    """The studio of one page view."""

    def __init__(self, viewer: SignedIn, catalogue: list[ModelChoice], state: StudioState) -> None:
        self.viewer = viewer
        self.ip = auth.client_ip()  # of the page's own request: the address the limits count submissions from
        self.charges = runtime.current().credits.charges  # False: generating is free (billing off)
        self.balance: int | None = None  # the person's credits, once read (never with billing off)
        self.given: dict[uuid.UUID, feedback.Given] = {}  # the person's thumbs on the results shown
        self.catalogue = {choice.key: choice for choice in catalogue}
        self.state = state
        self.jobs: dict[uuid.UUID, ui.element] = {}  # the cards of the jobs being watched
        self.prompts: dict[uuid.UUID, str] = {}  # their prompts, for their live cards
        self.live: dict[uuid.UUID, LiveJob] = {}  # the live cards built so far
        self.heard: dict[uuid.UUID, str] = {}  # the last thing announced about each running job
        self.fields: dict[str, ui.element] = {}
        self.size_picker: SizePicker | None = None
        self.timer: ui.timer | None = None  # watches running jobs; there is none while nothing runs

    def build(self) -> None:
        self.announcer = Announcer()  # progress and results, for screen readers
        with ui.element("div").classes("r-studio"):
            with ui.element("section").classes("r-studio-form").props('aria-label="Describe your image"'):
                self._form()
            with ui.element("section").classes("r-studio-results").props('aria-label="Results"'):
                # One list, newest first: new jobs join the recent generations under the same heading.
                self.results_heading = heading("Recent", 2)
                self.results = ui.column().classes("w-full gap-4 r-results")
                self.empty: ui.column | None = None  # the examples, built if there is nothing to show
                self.results_heading.set_visibility(False)

    async def show_opening(self) -> None:
        """The balance, the last seed's hint and the latest results, read in one trip once the page is shown."""
        opening = await blocking.io_bound(transact, generations.studio_opening, runtime.current().credits,
                                          self.viewer.user, RECENT)
        if self.balance is None:  # else a submission meanwhile has read a newer one
            self.balance = opening.balance
            self._update_cost()
        if self.state.last_seed is None:  # else a submission meanwhile has used a newer one
            self.state.last_seed = opening.last_seed
            self._seed_hint()
        self.given.update(opening.given)
        with self.results:
            for generation in opening.recent:
                if generation.id in self.jobs:  # one submitted meanwhile already has its card
                    continue
                if generation.finished:
                    self._generation_card(generation, opening.images.get(generation.id, []))
                else:  # still queued or running, here or on another instance: follow it to its end
                    card = ui.element("div").classes("r-job")
                    live = runtime.current().queue.state(generation.id)
                    if live is None:
                        self._paint_job(card, generation, [])
                    self._follow(card, generation.id, generation.prompt, live)
        self._show_empty(not opening.recent and not self.jobs)

    # --- the form --------------------------------------------------------------------------------------------------

    def _form(self) -> None:
        state = self.state
        with ui.element("div").classes("r-studio-fields"):
            self.banner = Banner()
            if not self.catalogue:
                ui.label("No image generator is available right now. Please try again later.").classes("r-muted")
                return
            prompt = ui.textarea("Prompt", placeholder="A lighthouse on a cliff at golden hour, oil painting").props(
                "outlined autogrow counter autofocus").classes("w-full").bind_value(state, "prompt")
            set_attributes(prompt, maxlength=PROMPT_MAX)
            prompt.on("keydown.ctrl.enter", self._generate)
            prompt.on("keydown.meta.enter", self._generate)
            prompt.on_value_change(lambda: setattr(prompt, "error", None))
            self.fields["prompt"] = prompt
            # Built when opened; a negative prompt (typed, or loaded from an earlier generation) keeps it open.
            self.negative_expansion = lazy.expansion("Negative prompt", self._negative_field).classes(
                "w-full r-expansion").bind_value_from(state, "negative_prompt", backward=bool)

            options = {key: self._model_label(choice) for key, choice in self.catalogue.items()}
            if state.model not in options:
                state.model = next(iter(options))
            model_select = ui.select(options, label="Model").props("outlined").classes("w-full").bind_value(
                state, "model")
            self.model_note = ui.label().classes("r-muted text-sm")
            # Size, tuning and source image: rebuilt when the model changes. One wrapper that lays its children out
            # as the form's own (display: contents), so it costs one element and changes no spacing.
            self.model_area = ui.element("div").classes("r-contents")

        # The action row sticks to the bottom of the form, so Generate stays in reach on a laptop screen.
        with ui.element("div").classes("r-studio-actions"):
            # The Ctrl+Enter hint is drawn by the stylesheet after the cost (.r-cost::after), silent to screen readers.
            self.cost_label = ui.label().classes("r-muted r-cost")
            # Next to Generate as well: "too many at once" and "today's cap" answer the click itself.
            self.limit_banner = Banner()
            if self.charges:
                # Next to Generate, where the refusal is seen: a balance too low for the request, and where to go.
                self.credits_banner = Banner()
                self.credits_link = ui.link("See your credits", "/billing").classes("r-muted text-sm")
                self.credits_link.set_visibility(False)
            self.generate_button = ui.button("Generate", on_click=self._generate).props(
                "unelevated no-caps size=lg").classes("w-full")
        self._model_changed(initial=True)  # fills the model-dependent areas above and the cost line
        model_select.on_value_change(lambda _: self._model_changed())

    def _negative_field(self) -> None:
        negative = ui.textarea("Things to avoid", placeholder="blurry, text, watermark").props(
            "outlined autogrow counter").classes("w-full").bind_value(self.state, "negative_prompt")
        set_attributes(negative, maxlength=PROMPT_MAX)
        negative.on_value_change(lambda: setattr(negative, "error", None))
        self.fields["negative_prompt"] = negative

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
        self.model_area.clear()
        with self.model_area:
            self.size_picker = SizePicker(self.state, info, self._update_cost)
            self._tuning_controls()
            self._source_controls()
        self._update_cost()

    def _tuning_controls(self) -> None:
        info, state = self.choice.info, self.state
        with ui.row().classes("w-full gap-3 no-wrap items-start"):
            steps = ui.number("Steps", min=1, max=info.max_steps, step=1, precision=0,
                              placeholder=str(info.default_steps), on_change=self._update_cost).props(
                "outlined dense").classes("grow").bind_value(state, "steps", forward=_whole_or_none)
            guidance = ui.number("Guidance", min=0, max=info.max_guidance, step=0.5, precision=1,
                                 placeholder=f"{info.default_guidance:g}").props("outlined dense").classes(
                "grow").bind_value(state, "guidance", forward=lambda v: None if v is None else float(v))
        for name, element in (("steps", steps), ("guidance", guidance)):
            element.on_value_change(lambda _, element=element: setattr(element, "error", None))
            self.fields[name] = element
        most = min(info.max_images, runtime.current().settings.max_images_per_request)
        ChoiceGroup(list(range(1, most + 1)), label="Number of images", caption="Images", inline=True,
                    on_change=self._update_cost).classes("w-full").bind_value(state, "count")
        with ui.row().classes("w-full gap-2 items-start no-wrap"):
            self.seed_input = ui.number("Seed", min=0, max=generations.SEED_MAX, step=1, precision=0,
                                        placeholder="random", on_change=self._seed_typed).props(
                "outlined dense clearable").classes("grow r-seed").bind_value(state, "seed", forward=_whole_or_none)
            self.fields["seed"] = self.seed_input
            ui.button(icon="casino", on_click=self._new_seed).props(
                'flat round aria-label="New random seed" title="New random seed"')
            ui.checkbox("Lock", on_change=self._lock_changed).props(
                'aria-label="Keep this seed" title="Keep this seed for the next generations"').bind_value(
                state, "lock_seed")
        self._seed_hint()

    def _source_controls(self) -> None:
        info, state = self.choice.info, self.state
        if not info.img2img:
            state.upload_id = None
            return
        # Built when opened; a source image already chosen (the model changed meanwhile) opens it.
        lazy.expansion("Start from an image (optional)", self._source_fields).classes(
            "w-full r-expansion").set_value(state.upload_id is not None)

    def _source_fields(self) -> None:
        state = self.state
        preview = ui.row().classes("items-center gap-3")

        def show() -> None:
            preview.clear()
            if state.upload_id is None:
                return
            with preview:
                Picture(f"/media/uploads/{state.upload_id}", alt="Source image", lazy=False).classes(
                    "r-source-preview")
                ui.button("Remove", on_click=lambda: (setattr(state, "upload_id", None), show(),
                                                      self._update_cost())).props(
                    'flat no-caps aria-label="Remove the source image"')

        async def uploaded(signed_in: SignedIn, event: events.UploadEventArguments) -> None:
            data = await event.file.read()
            current = runtime.current()
            try:
                upload = await blocking.io_bound(transact, uploads.store, current.storage, current.settings,
                                                 signed_in.user, data)
            except InvalidImage as exc:
                self.banner.error(str(exc))
                return
            self.banner.clear()
            state.upload_id = upload.id
            show()
            self._update_cost()  # image-to-image may be priced differently

        limit = runtime.current().settings.upload_max_mb
        FileDrop("Choose a source image", max_bytes=limit * 1024 * 1024, on_upload=auth.action(uploaded),
                 on_refused=self.banner.error).classes("w-full")
        with ui.row().classes("w-full items-center gap-3 no-wrap"):
            ui.label("Strength").classes("r-field-label")
            ui.slider(min=0, max=1, step=0.05).props('label aria-label="Strength"').classes(
                "grow").bind_value(state, "strength")
        show()

    # --- seed ------------------------------------------------------------------------------------------------------

    def _seed_typed(self, event: events.ValueChangeEventArguments) -> None:
        # Typing a seed means wanting that seed: lock it, or it would be ignored. Clearing it means "random".
        if event.value is not None and not self.state.lock_seed:
            self.state.lock_seed = True
        elif event.value is None and self.state.lock_seed:
            self.state.lock_seed = False

    def _lock_changed(self, event: events.ValueChangeEventArguments) -> None:
        state = self.state
        if event.value and state.seed is None:
            state.seed = state.last_seed if state.last_seed is not None else secrets.randbelow(generations.SEED_MAX + 1)
        elif not event.value:
            state.seed = None  # unlocked: every generation draws a new seed

    def _new_seed(self) -> None:
        self.state.seed = secrets.randbelow(generations.SEED_MAX + 1)
        self.state.lock_seed = True

    def _seed_hint(self) -> None:
        last = self.state.last_seed
        self.seed_input.props["hint"] = f"Last used: {last}" if last is not None else "Leave empty for a random seed"
        self.seed_input.update()

    # --- cost --------------------------------------------------------------------------------------------------------

    def _update_cost(self, *_: object) -> None:
        state = self.state
        if state.model not in self.catalogue:
            return
        credits = runtime.current().credits.quote(
            model_key=state.model, width=state.width or 0, height=state.height or 0,
            steps=state.steps or self.choice.info.default_steps, count=state.count or 1,
            image_to_image=state.upload_id is not None)
        if not self.charges:  # billing off: nothing about money beyond "free"
            self.cost_label.text = "Cost: free" if credits == 0 else f"Cost: {credits} credits"
            return
        cost = "Free" if credits == 0 else _credits(credits)
        if self.balance is None:  # not read yet: it follows as soon as the page is open
            self.cost_label.text = cost
            return
        left = f"{self.balance} left" if self.balance >= 0 else f"balance {self.balance}"
        self.cost_label.text = f"{cost} · {left}"

    async def _refresh_balance(self) -> None:
        """Read the balance again (after a submission, and when a job ends and its credits are settled)."""
        if not self.charges:
            return
        current = runtime.current()
        self.balance = await blocking.io_bound(transact, current.credits.balance, self.viewer.user)
        self._update_cost()

    def _show_short(self, message: str) -> None:
        """The balance does not cover the request: say so next to Generate, with the way to the credits page."""
        if not self.charges:  # cannot happen with billing off; the form's banner then
            self.banner.error(message)
            return
        self.credits_banner.error(message)
        self.credits_link.set_visibility(True)

    def _clear_short(self) -> None:
        if self.charges:
            self.credits_banner.clear()
            self.credits_link.set_visibility(False)

    # --- generating ------------------------------------------------------------------------------------------------

    async def _generate(self) -> None:
        await auth.action(self._submit)()

    async def _submit(self, signed_in: SignedIn) -> None:
        state = self.state
        self._clear_errors()
        current = runtime.current()
        try:
            choice = await current.providers.find(state.model)
            form = generations.GenerationForm(
                prompt=state.prompt or "", negative_prompt=state.negative_prompt or "", model=state.model,
                width=int(state.width or 0), height=int(state.height or 0), steps=state.steps,
                guidance=state.guidance, count=int(state.count or 1), seed=state.seed if state.lock_seed else None,
                upload_id=state.upload_id, strength=state.strength if state.upload_id else None)
            # Input to correct is not a generation: only a valid request counts against the limits.
            generations.validate(current.settings, choice, form)
            await abuse.checked(abuse.check_generation, current.settings, signed_in.user.id, self.ip)
            generation = await blocking.io_bound(transact, abuse.submit, current.settings, signed_in.user, choice,
                                                 form, current.credits)
        except generations.InvalidGeneration as exc:
            self._show_error(str(exc), exc.field)
            return
        except ProviderError as exc:
            self.banner.error(exc.user_message)
            return
        except abuse.Refused as exc:  # nothing recorded; the form keeps everything as typed
            self.limit_banner.error(exc.message)
            return
        except InsufficientCredits as exc:  # its transaction rolled back: nothing was recorded or queued
            self._show_short(str(exc))
            await self._refresh_balance()
            return
        state.last_seed = generation.seed
        self._seed_hint()
        if generation.status == GenerationStatus.QUEUED:
            current.queue.submit(generation.id, signed_in.user.id)
        with self.results:
            card = ui.element("div").classes("r-job")
        card.move(self.results, target_index=0)
        self._show_empty(False)
        live = current.queue.state(generation.id)
        if live is not None:
            self._follow(card, generation.id, generation.prompt, live)
        else:
            self._paint_job(card, generation, [])  # blocked before it was queued
            self.announcer.say(_outcome(generation, 0))
        _reveal(card)
        await self._refresh_balance()  # the reservation (or nothing, for a blocked prompt)

    def _show_error(self, message: str, field_name: str) -> None:
        """Put the message under the field it is about (or in the banner), and move focus there."""
        if field_name == "size" and self.size_picker is not None and self.size_picker.show_error(message):
            return
        element = self.fields.get(field_name)
        if element is None:
            self.banner.error(message)
            return
        if field_name == "negative_prompt":
            self.negative_expansion.open()
        element.error = message  # type: ignore[attr-defined]
        element.run_method("focus")

    def _clear_errors(self) -> None:
        self.banner.clear()
        self.limit_banner.clear()
        self._clear_short()
        for element in self.fields.values():
            element.error = None  # type: ignore[attr-defined]
        if self.size_picker is not None:
            self.size_picker.clear_error()

    async def _refresh_jobs(self) -> None:
        queue = runtime.current().queue
        if not self.jobs and self.timer is not None:  # nothing left to watch: no ticking for an idle page
            self.timer.cancel()
            self.timer = None
            return
        for generation_id, card in list(self.jobs.items()):
            live = queue.state(generation_id)
            if live is not None:
                self._paint_live(card, generation_id, live)
                continue
            generation = await blocking.io_bound(transact, generations.for_user, self.viewer.user.id, generation_id)
            if not generation.finished:
                continue  # between the queue and the database: look again next tick
            images = await blocking.io_bound(transact, generations.images_of, [generation_id])
            del self.jobs[generation_id]
            self.heard.pop(generation_id, None)
            self.prompts.pop(generation_id, None)
            self.live.pop(generation_id, None)
            self._paint_job(card, generation, images[generation_id])
            self.announcer.say(_outcome(generation, len(images[generation_id])))
            _reveal(card, only_if_watched=True)  # the images made the card taller: keep them in view
            await self._refresh_balance()  # settled or given back

    def _follow(self, card: ui.element, generation_id: uuid.UUID, prompt: str, live: JobState | None) -> None:
        """Watch an unfinished job's card until the job ends (``live``: its state now, painted at once)."""
        self.jobs[generation_id] = card
        self.prompts[generation_id] = prompt
        if live is not None:
            self._paint_live(card, generation_id, live)  # at once, not at the next refresh tick
        if self.timer is None:
            self.timer = ui.timer(0.5, self._refresh_jobs)

    def _paint_live(self, card: ui.element, generation_id: uuid.UUID, live: JobState) -> None:
        self._announce_live(generation_id, live)
        shown = self.live.get(generation_id)
        if shown is None:
            shown = self.live[generation_id] = LiveJob(card, self.prompts.get(generation_id, ""),
                                                       lambda: self._cancel(generation_id))
        shown.show(live)

    def _announce_live(self, generation_id: uuid.UUID, live: JobState) -> None:
        """Announce a job's state when it changes: queued, started, and each quarter of the progress."""
        if live.status == GenerationStatus.QUEUED:
            ahead = live.position or 0
            message = f"Waiting to start, {ahead} ahead of you." if ahead else "Waiting to start, you are next."
        elif live.progress is not None:
            message = f"Generating, {int(live.progress * 4) * 25} percent done." if live.progress >= 0.25 \
                else "Generating."
        else:
            message = "Generating."
        if self.heard.get(generation_id) != message:
            self.heard[generation_id] = message
            self.announcer.say(message)

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

    def _show_empty(self, empty: bool) -> None:
        if empty and self.empty is None:
            with self.results.parent_slot or self.results:
                self.empty = ui.column().classes("r-empty w-full r-studio-empty")
                with self.empty:
                    self._examples()
        if self.empty is not None:
            self.empty.set_visibility(empty)
        self.results_heading.set_visibility(not empty)

    def _examples(self) -> None:
        ui.icon("auto_awesome").classes("r-empty-icon").props('aria-hidden="true"')
        ui.label("Your images will appear here").classes("r-card-title")
        ui.label("Describe what you want to see, or start from one of these:").classes("r-muted")
        with ui.element("div").classes("r-examples"):
            for text in EXAMPLE_PROMPTS:
                ui.button(text, on_click=lambda text=text: self._use_example(text)).props(
                    "outline no-caps").classes("r-example")

    def _use_example(self, text: str) -> None:
        self.state.prompt = text
        prompt = self.fields.get("prompt")
        if prompt is not None:
            prompt.run_method("focus")

    def _generation_card(self, generation: Generation, images: list[Image]) -> None:
        with ui.element("div").classes("r-job"):
            self._generation_body(generation, images)

    def _generation_body(self, generation: Generation, images: list[Image]) -> None:
        with ui.row().classes("w-full items-start justify-between no-wrap gap-3"):
            with ui.column().classes("gap-0 grow r-job-head"):
                ui.label(generation.prompt).classes("r-job-prompt")
                origin = provenance.origin_label(ImageProviders.provenance(generation.provider)[0])
                meta = f"{origin} · {generation.model_label or generation.model} · " \
                       f"{generation.width}×{generation.height} · seed {generation.seed}"
                if generation.duration_ms is not None and generation.status == GenerationStatus.SUCCEEDED:
                    meta += f" · {generation.duration_ms / 1000:.1f} s"
                ui.label(meta).classes("r-muted text-sm")
            with ui.row().classes("gap-1 no-wrap"):
                # A native title for the mouse: a tooltip element per button on every card would cost the server.
                ui.button(icon="tune", on_click=lambda: self._use(generation, keep_seed=True)).props(
                    'flat round dense aria-label="Use these parameters" title="Use these parameters"')
                ui.button(icon="shuffle", on_click=lambda: self._use(generation, keep_seed=False)).props(
                    'flat round dense aria-label="Remix: same parameters, new seed" title="Remix (new seed)"')
        if generation.status in {GenerationStatus.FAILED, GenerationStatus.BLOCKED, GenerationStatus.CANCELLED}:
            ui.label(generation.error or "This generation did not finish.").classes(
                "r-banner r-banner--error" if generation.status != GenerationStatus.CANCELLED else "r-muted")
        if images:
            self._result_grid(generation, images)
            if generation.status == GenerationStatus.SUCCEEDED:
                ResultFeedback(generation.id, self.given)
        elif generation.error and generation.status == GenerationStatus.SUCCEEDED:
            ui.label(generation.error).classes("r-muted")

    def _result_grid(self, generation: Generation, images: list[Image]) -> None:
        seeds = {image.id: image.seed for image in images}
        grid = TileGrid([tile(image.id, image.width, image.height, alt=f"Generated image, seed {image.seed}",
                              favourite=image.favourite, sensitive=image.nsfw) for image in images],
                        variant="results", usable=True).classes("w-full")
        grid.on_use(lambda image_id: self._use(generation, keep_seed=True, seed=seeds[image_id]))
        grid.on_favourite(lambda image_id, wanted: self._favourite(grid, image_id, wanted))

    async def _favourite(self, grid: TileGrid, image_id: uuid.UUID, wanted: bool) -> None:
        async def save(signed_in: SignedIn) -> None:
            try:
                updated = await blocking.io_bound(transact, generations.set_favourite, signed_in.user, image_id, wanted)
            except generations.GenerationNotFound:  # deleted in another tab meanwhile
                updated = None
            grid.patch(image_id, favourite=updated.favourite if updated is not None else not wanted)
        await auth.action(save)()

    def _use(self, generation: Generation, *, keep_seed: bool, seed: int | None = None) -> None:
        _apply_generation(self.state, generation, keep_seed=keep_seed, seed=seed)
        if self.state.model in self.catalogue:
            self._model_changed(initial=True)
        ui.notify("Parameters loaded into the form" if keep_seed else "Remix loaded: same parameters, new seed")
        ui.run_javascript("window.scrollTo({top: 0, behavior: 'smooth'})")


class ResultFeedback:
    """Thumbs up or down on one finished result, and an optional comment offered once a thumb is chosen.

    The buttons are toggle buttons (``aria-pressed``); choosing the other thumb changes the same record.
    """

    def __init__(self, generation_id: uuid.UUID, given: dict[uuid.UUID, feedback.Given]) -> None:
        self.generation_id = generation_id
        self.given = given  # the studio's map, kept current so a repaint shows the latest choice
        current = given.get(generation_id)
        with ui.column().classes("w-full gap-2").mark("result-feedback"):
            with ui.row().classes("items-center gap-1"):
                ui.label("Was this a good result?").classes("r-muted text-sm")
                self.up = ui.button(on_click=auth.action(self._rate_up)).props("flat round dense")
                set_attributes(self.up, aria_label="Good result")
                self.down = ui.button(on_click=auth.action(self._rate_down)).props("flat round dense")
                set_attributes(self.down, aria_label="Bad result")
            self.status = ui.label("").classes("r-muted text-sm").props('role="status"')
            self.comment_area = ui.column().classes("w-full gap-2")  # filled once a thumb is chosen
        self.comment: ui.textarea | None = None
        self._show(current.rating if current else None)

    def _comment_field(self) -> None:
        current = self.given.get(self.generation_id)
        with self.comment_area:
            self.comment = ui.textarea("Comment (optional)", value=current.comment if current else "").props(
                "outlined dense autogrow counter").classes("w-full")
            set_attributes(self.comment, maxlength=feedback.COMMENT_MAX)
            ui.button("Save comment", on_click=auth.action(self._save_comment)).props("outline no-caps dense")

    def _show(self, rating: int | None) -> None:
        """Pressed state as the icon, the colour and ``aria-pressed``; the comment only once a thumb is chosen."""
        for button, value, icon, outline in ((self.up, feedback.UP, "thumb_up", "thumb_up_off_alt"),
                                             (self.down, feedback.DOWN, "thumb_down", "thumb_down_off_alt")):
            pressed = rating == value
            button.props["icon"] = icon if pressed else outline
            if pressed:
                button.props("color=primary")
            else:
                button.props(remove="color")
            set_attributes(button, aria_pressed="true" if pressed else "false")
            button.update()
        if rating is not None and self.comment is None:
            self._comment_field()
        self.comment_area.set_visibility(rating is not None)

    async def _rate_up(self, signed_in: SignedIn) -> None:
        await self._save(signed_in, feedback.UP, None)

    async def _rate_down(self, signed_in: SignedIn) -> None:
        await self._save(signed_in, feedback.DOWN, None)

    async def _save_comment(self, signed_in: SignedIn) -> None:
        current = self.given.get(self.generation_id)
        if current is not None and self.comment is not None:
            await self._save(signed_in, current.rating, self.comment.value or "")

    async def _save(self, signed_in: SignedIn, rating: int, comment: str | None) -> None:
        if self.comment is not None:
            self.comment.error = None
        try:
            given = await blocking.io_bound(transact, feedback.give_feedback, signed_in.user, self.generation_id,
                                            rating, comment)
        except feedback.FeedbackError as exc:
            self.status.text = str(exc)
            if comment is not None and self.comment is not None:
                self.comment.error = str(exc)  # the field keeps what was typed
            return
        except feedback.GenerationNotFound:  # deleted in another tab meanwhile
            self.status.text = "This result no longer exists."
            return
        self.given[self.generation_id] = given
        self._show(given.rating)
        self.status.text = "Comment saved. Thank you." if comment is not None else "Thanks for your feedback."


def _outcome(generation: Generation, count: int) -> str:
    """What a screen reader hears when a job has ended."""
    if generation.status == GenerationStatus.SUCCEEDED:
        return f"{count} image{'s' if count != 1 else ''} ready: {generation.prompt[:120]}"
    return generation.error or "This generation did not finish."


def _credits(count: int) -> str:
    return "1 credit" if count == 1 else f"{count} credits"


def _whole_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def _reveal(card: ui.element, *, only_if_watched: bool = False) -> None:
    """Scroll a job card into view (see ``rupaliReveal`` in assets/rupali.js)."""
    if only_if_watched:
        ui.run_javascript(f"window.rupaliReveal && rupaliReveal({card.id}, true)")
    else:
        ui.run_javascript(f"window.rupaliReveal && rupaliReveal({card.id}, false)")
