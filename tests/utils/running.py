"""A generation that is really running in the app's queue, for tests of what may happen meanwhile."""

from __future__ import annotations

import asyncio
import uuid

from rupali import runtime
from rupali.db import session_scope
from rupali.models import GenerationStatus, User
from rupali.services import generation as generations


async def running_generation(owner: User, prompt: str = "still being drawn") -> uuid.UUID:
    """A big offline generation (four 2048² images) submitted to the app's queue, returned once it runs."""
    current = runtime.current()
    choice = await current.providers.find("offline:sketch-v1")
    form = generations.GenerationForm(prompt=prompt, model="offline:sketch-v1", width=2048, height=2048, count=4)
    with session_scope() as session:
        generation = generations.submit(session, current.settings, owner, choice, form, current.credits)
    current.queue.submit(generation.id, owner.id)
    for _ in range(500):
        state = current.queue.state(generation.id)
        if state is not None and state.status == GenerationStatus.RUNNING:
            return generation.id
        await asyncio.sleep(0.01)
    raise AssertionError("the generation never ran")
