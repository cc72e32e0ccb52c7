"""Signing a generated image's files, for new images (the generation queue) and for those stored before signing
existed (the ``sign_images`` job).

A PNG gets two signed files: with the A1111 ``parameters`` text (and the prompt in its manifest) and without, so
each download variant is a signed file served as it is. JPEG and WebP, whose downloads never carried the prompt,
get one file without it.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import PurePosixPath

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select, update

from rupali import media
from rupali.clock import now
from rupali.config import Settings
from rupali.db import session_scope, transact
from rupali.models import Generation, Image
from rupali.provenance import ContentCredentials, Origin, SigningUnavailable
from rupali.providers import ImageProviders
from rupali.services import holds, uploads
from rupali.storage import InvalidKey, MediaStorage

log = logging.getLogger(__name__)
BATCH = 100  # images signed per job run: a run stays short, the next one goes on


@dataclass(frozen=True)
class SignedFiles:
    original: bytes  # PNG: with the parameters text; JPEG and WebP: the only file
    plain: bytes | None  # PNG: without the parameters text


def sign(credentials: ContentCredentials, generation: Generation, data: bytes, image_format: str, *, seed: int,
         width: int, height: int, created_at: datetime, model_version: str | None = None,
         parent: bytes | None = None) -> SignedFiles:
    """Both signed files of one image. Raises ValueError for a file that is not what ``image_format`` says."""
    source_type, agent = ImageProviders.provenance(generation.provider)
    origin = Origin(source_type, agent, generation.model_label or generation.model, created_at, parent=parent)
    if image_format != "PNG":
        return SignedFiles(credentials.sign(data, image_format, origin, width=width, height=height), None)
    parameters = media.infotext(generation, Image(seed=seed, width=width, height=height), model_version=model_version)
    described = replace(origin, prompt=generation.prompt, negative_prompt=generation.negative_prompt or None, seed=seed)
    return SignedFiles(credentials.sign(data, "PNG", described, parameters=parameters),
                       credentials.sign(data, "PNG", origin, parameters=None))


def plain_key(original_key: str) -> str:
    path = PurePosixPath(original_key)
    return str(path.with_name(f"{path.stem}.plain{path.suffix}"))


def sign_stored(settings: Settings, storage: MediaStorage, credentials: ContentCredentials, limit: int = BATCH) -> str:
    """Sign up to ``limit`` images stored before signing existed, each in the crash-safe order of rupali.storage:
    intent, new files under new names, row, commit.

    The unsigned file is left where it is: a ZIP or an export that is reading it right now must not lose it, and no
    row names it any more, so the media sweep removes it. Images of accounts under an evidence hold stay as they
    are, and a file that cannot be signed (damaged) is marked and not tried again.
    """
    with session_scope(settings) as session:
        waiting = session.exec(select(Image.id).where(col(Image.signed).is_(False),
                                                      col(Image.files_missing_at).is_(None),
                                                      col(Image.signing_failed_at).is_(None),
                                                      holds.not_held(Image.user_id))
                               .order_by(col(Image.created_at)).limit(limit)).all()
    signed = failed = 0
    for image_id in waiting:
        try:
            signed += _sign_one(settings, storage, credentials, image_id)
        except SigningUnavailable as exc:
            return f"signed {signed} stored images, then stopped: the key cannot sign ({exc})"
        except ValueError as exc:  # the stored file is not the image its row says: it will not sign later either
            log.warning("cannot sign stored image %s: %s", image_id, exc)
            transact(_mark_failed, image_id)
            failed += 1
        except (OSError, InvalidKey, SQLAlchemyError) as exc:  # try again on a later run
            log.warning("cannot sign stored image %s now: %s", image_id, exc)
            failed += 1
    return f"signed {signed} stored images" + (f", {failed} could not be signed" if failed else "")


def _sign_one(settings: Settings, storage: MediaStorage, credentials: ContentCredentials, image_id: uuid.UUID) -> int:
    with session_scope(settings) as session:
        found = _load(session, storage, image_id)
    if found is None:
        return 0
    image, generation, data, parent = found
    if image.format == "PNG":
        data = media.png_with_parameters(data, None)  # the provider's file as stored, without any old text
    files = sign(credentials, generation, data, image.format, seed=image.seed, width=image.width, height=image.height,
                 created_at=image.created_at, parent=parent)
    # New names of their own: two runs at once (the scheduler and ``rupali jobs run``) never share a file.
    path, tag = PurePosixPath(image.original_key), secrets.token_hex(4)
    new_keys = [str(path.with_name(f"{path.stem}.signed-{tag}{path.suffix}"))]
    if files.plain is not None:
        new_keys.append(str(path.with_name(f"{path.stem}.plain-{tag}{path.suffix}")))
    intent = storage.intend(new_keys)
    try:
        storage.put(new_keys[0], files.original)
        if files.plain is not None:
            storage.put(new_keys[1], files.plain)
        with session_scope(settings) as session:
            # One conditional UPDATE: of two runs at once only one finds the row still unsigned (on SQLite too).
            changed = session.execute(
                update(Image).where(col(Image.id) == image_id, col(Image.signed).is_(False),
                                    col(Image.original_key) == image.original_key)
                .values(original_key=new_keys[0], bytes=len(files.original), signed=True,
                        plain_key=new_keys[1] if files.plain is not None else None)).rowcount
        if changed != 1:
            intent.rollback()  # deleted or signed meanwhile: the new files are nobody's
            return 0
    except BaseException:
        intent.rollback()
        raise
    intent.commit()
    return 1


def _mark_failed(session: Session, image_id: uuid.UUID) -> None:
    row = session.get(Image, image_id)
    if row is not None:
        row.signing_failed_at = now()
        session.add(row)


def _load(session: Session, storage: MediaStorage, image_id: uuid.UUID
          ) -> tuple[Image, Generation, bytes, bytes | None] | None:
    image = session.get(Image, image_id)
    if image is None or image.signed:
        return None
    generation = session.get(Generation, image.generation_id)
    if generation is None:
        return None
    parent = uploads.source_bytes(session, storage, generation.upload_id) if generation.upload_id else None
    session.expunge(image)
    session.expunge(generation)
    return image, generation, storage.read(image.original_key), parent
