"""NiceGUI's server-side storage lives in Redis when Redis is configured, so it follows a person across instances;
without Redis it stays in NiceGUI's files, as NiceGUI ships it."""

from __future__ import annotations

import asyncio
import uuid

import redis
from nicegui import app
from nicegui.persistence.redis_persistent_dict import RedisPersistentDict
from nicegui.storage import Storage
from nicegui.testing import User

from tests.conftest import REDIS_URL


async def test_with_redis_nicegui_storage_is_in_redis(shared_redis, user: User):
    prefix = shared_redis
    assert (Storage.redis_url, Storage.redis_key_prefix) == (REDIS_URL, f"{prefix}nicegui:")
    storage_id = f"test-{uuid.uuid4().hex}"
    stored = app.storage._create_persistent_dict(storage_id)
    assert isinstance(stored, RedisPersistentDict)
    try:
        await stored.initialize()
        stored["theme"] = "dark"  # NiceGUI writes it to Redis in the background
        client = redis.Redis.from_url(REDIS_URL)
        for _ in range(100):
            if (value := client.get(f"{prefix}nicegui:{storage_id}")) is not None:
                break
            await asyncio.sleep(0.02)
        client.close()
        assert value is not None and b"dark" in value
    finally:
        await stored.close()


async def test_without_redis_nicegui_storage_stays_in_files(user: User):
    assert Storage.redis_url is None
    assert not isinstance(app.storage._create_persistent_dict(f"test-{uuid.uuid4().hex}"), RedisPersistentDict)
