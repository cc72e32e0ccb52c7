"""One person's rows in every table of the personal-data inventory, and their files, for erasure and export tests.

:data:`FACTORIES` has one factory per table that declares personal data about an account holder, keyed by table
name. A table added to the inventory without a factory here fails the erasure-completeness test, so no new table
can be forgotten by the erasure (or the export). Every factory leaves recognisable traces of the person — their
e-mail address, name, prompt, and files whose SHA-256 is recorded — so a test can look for them afterwards.
"""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from PIL import Image as PILImage
from sqlmodel import Session, select

from rupali import tokens
from rupali.clock import now
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import (
    AccountToken,
    ApiKey,
    AuditEntry,
    AuthSession,
    ConsentEvent,
    ConsentKind,
    CreditEntry,
    CreditOrder,
    DataExport,
    EntryKind,
    EvidenceHold,
    ExportStatus,
    Feedback,
    Generation,
    GenerationStatus,
    Image,
    MailKind,
    OidcIdentity,
    OrderStatus,
    OutboxMessage,
    PolicyAcceptance,
    PrivacyRequest,
    PromptStrike,
    RequestKind,
    RequestLog,
    RequestSource,
    RequestStatus,
    SupportMessage,
    SupportTicket,
    TokenPurpose,
    Upload,
    User,
)
from rupali.privacy import inventory
from rupali.privacy.inventory import Subject
from rupali.services import ledger, users
from rupali.storage import LocalStorage
from tests.utils.factories import PASSWORD


@dataclass
class Person:
    """An account filled by :func:`fill`, with what can identify it."""

    user_id: uuid.UUID
    email: str
    name: str
    prompt: str
    negative_prompt: str
    files: dict[str, str] = field(default_factory=dict)  # storage key -> SHA-256 of its bytes
    ids: dict[str, list[object]] = field(default_factory=dict)  # table -> primary keys of the person's rows

    @property
    def traces(self) -> tuple[str, ...]:
        """Strings that must not survive the person's erasure anywhere in the database."""
        return (self.email, self.name, self.prompt, self.negative_prompt, str(self.user_id), self.user_id.hex)

    def remember(self, table: str, row_id: object) -> None:
        self.ids.setdefault(table, []).append(row_id)


Factory = Callable[[Session, LocalStorage, Person], None]


def image_bytes(seed: str, size: int = 24) -> bytes:
    """A small PNG of noise: unique per seed, so its hash identifies whose file it is."""
    rng = random.Random(seed)
    image = PILImage.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _store(storage: LocalStorage, person: Person, key: str, data: bytes) -> str:
    storage.put(key, data)
    person.files[key] = hashlib.sha256(data).hexdigest()
    return key


# --- one factory per table -------------------------------------------------------------------------------------------

def _user(session: Session, storage: LocalStorage, person: Person) -> None:
    user = session.get(User, person.user_id)
    assert user is not None
    user.avatar_key = _store(storage, person, f"avatars/{user.id.hex}/{uuid.uuid4().hex[:16]}.webp",
                             image_bytes(f"avatar {person.email}"))
    session.add(user)
    person.remember("user", user.id)


def _auth_session(session: Session, storage: LocalStorage, person: Person) -> None:
    record = AuthSession(user_id=person.user_id, token_hash=tokens.digest(tokens.new_token()), method="password",
                         ip_address="203.0.113.7", user_agent=f"Mozilla/5.0 ({person.name}'s laptop)",
                         device="Firefox 130 on Ubuntu", expires_at=now() + timedelta(days=30))
    session.add(record)
    person.remember("auth_session", record.id)


def _account_token(session: Session, storage: LocalStorage, person: Person) -> None:
    record = AccountToken(user_id=person.user_id, purpose=TokenPurpose.CHANGE_EMAIL,
                          token_hash=tokens.digest(tokens.new_token()), new_email=f"new.{person.email}",
                          expires_at=now() + timedelta(hours=24))
    session.add(record)
    session.flush()
    person.remember("account_token", record.id)


def _oidc_identity(session: Session, storage: LocalStorage, person: Person) -> None:
    record = OidcIdentity(user_id=person.user_id, provider="https://id.example.com",
                          subject=f"subject-{person.user_id.hex}", email=person.email)
    session.add(record)
    session.flush()
    person.remember("oidc_identity", record.id)


def _policy_acceptance(session: Session, storage: LocalStorage, person: Person) -> None:
    for document in ("terms", "privacy"):
        record = PolicyAcceptance(user_id=person.user_id, document=document, version="2026-01")
        session.add(record)
        session.flush()
        person.remember("policy_acceptance", record.id)


def _upload(session: Session, storage: LocalStorage, person: Person) -> None:
    upload_id = uuid.uuid4()
    key = _store(storage, person, f"uploads/{person.user_id.hex}/{upload_id.hex}.png",
                 image_bytes(f"upload {person.email}"))
    session.add(Upload(id=upload_id, user_id=person.user_id, key=key, width=24, height=24, bytes=100))
    session.flush()
    person.remember("upload", upload_id)


def _generation(session: Session, storage: LocalStorage, person: Person) -> None:
    upload_id = person.ids["upload"][0]
    for status in (GenerationStatus.SUCCEEDED, GenerationStatus.QUEUED):
        generation = Generation(user_id=person.user_id, status=status, provider="offline", model="sketch-v1",
                                model_label="Sketch", prompt=person.prompt, negative_prompt=person.negative_prompt,
                                width=24, height=24, steps=4, guidance=5.0, count=2, seed=1234,
                                upload_id=upload_id, strength=0.6, provider_cost=Decimal("0.001"))  # type: ignore[arg-type]
        session.add(generation)
        session.flush()
        person.remember("generation", generation.id)


def _image(session: Session, storage: LocalStorage, person: Person) -> None:
    generation_id = person.ids["generation"][0]
    folder = f"{person.user_id.hex}/{generation_id.hex}"  # type: ignore[attr-defined]
    for position in range(2):
        image_id = uuid.uuid4()
        original = _store(storage, person, f"images/{folder}/{image_id.hex}.png",
                          image_bytes(f"original {position} {person.email}"))
        thumbnail = _store(storage, person, f"thumbnails/{folder}/{image_id.hex}.webp",
                           image_bytes(f"thumbnail {position} {person.email}", size=8))
        session.add(Image(id=image_id, user_id=person.user_id, generation_id=generation_id, position=position,  # type: ignore[arg-type]
                          seed=1234 + position, width=24, height=24, format="PNG", bytes=100, original_key=original,
                          thumbnail_key=thumbnail, nsfw_score=0.01, favourite=position == 0))
        session.flush()
        person.remember("image", image_id)


def _api_key(session: Session, storage: LocalStorage, person: Person) -> None:
    secret = "rk_" + tokens.new_token()
    key = ApiKey(user_id=person.user_id, name=f"{person.name}'s script", prefix=secret[:10],
                 key_hash=tokens.digest(secret))
    session.add(key)
    session.flush()
    person.remember("api_key", key.id)


def _outbox_message(session: Session, storage: LocalStorage, person: Person) -> None:
    message = OutboxMessage(user_id=person.user_id, recipient=person.email, kind=MailKind.TRANSACTIONAL,
                            subject="Confirm your e-mail address", text_body=f"Hi {person.name},\n\nWelcome.",
                            html_body=f"<p>Hi {person.name},</p>")
    session.add(message)
    session.flush()
    person.remember("outbox_message", message.id)


def _data_export(session: Session, storage: LocalStorage, person: Person) -> None:
    export_id = uuid.uuid4()
    key = _store(storage, person, f"exports/{person.user_id.hex}/{export_id.hex}.zip",
                 f"PK fake archive of {person.email}: {person.prompt}".encode())
    session.add(DataExport(id=export_id, user_id=person.user_id, status=ExportStatus.READY, progress=1.0,
                           finished_at=now(), expires_at=now() + timedelta(days=7), storage_key=key, bytes=64, files=3))
    session.flush()
    person.remember("data_export", export_id)


def _privacy_request(session: Session, storage: LocalStorage, person: Person) -> None:
    received = now()
    for kind, status in ((RequestKind.ACCESS, RequestStatus.DONE), (RequestKind.OBJECTION, RequestStatus.OPEN)):
        request = PrivacyRequest(user_id=person.user_id, contact=person.email, kind=kind, source=RequestSource.MAIL,
                                 status=status, received_at=received, due_at=received + timedelta(days=30),
                                 closed_at=received if status is RequestStatus.DONE else None,
                                 outcome="sent" if status is RequestStatus.DONE else "",
                                 note=f"Letter from {person.name}, {person.email}")
        session.add(request)
        session.flush()
        person.remember("privacy_request", request.id)


def _consent_event(session: Session, storage: LocalStorage, person: Person) -> None:
    event = ConsentEvent(user_id=person.user_id, kind=ConsentKind.PRODUCT_UPDATES, granted=True,
                         policy_version="2026-01", source="privacy-center")
    session.add(event)
    session.flush()
    person.remember("consent_event", event.id)


def _credit_account(session: Session, storage: LocalStorage, person: Person) -> None:
    ledger.open_account(session, get_settings(), person.user_id)
    session.flush()
    person.remember("credit_account", person.user_id)


def _credit_entry(session: Session, storage: LocalStorage, person: Person) -> None:
    user = session.get(User, person.user_id)
    assert user is not None
    generation_id = person.ids["generation"][1]  # the queued one holds its reservation
    generation = session.get(Generation, generation_id)
    ledger.reserve(session, get_settings(), person.user_id, generation, 2)  # type: ignore[arg-type]
    for entry in session.exec(select(CreditEntry).where(CreditEntry.user_id == person.user_id)).all():
        person.remember("credit_entry", entry.id)


def _credit_purchase_entry(session: Session, storage: LocalStorage, person: Person) -> None:
    settings = get_settings()
    order = uuid.uuid4().hex
    for kind, delta in ((EntryKind.PURCHASE, 100), (EntryKind.REFUND, -40)):
        entry = ledger.post_payment(session, settings, person.user_id, kind, delta, reference=f"order {order}",
                                    key=f"{kind.value}:{order}")
        assert entry is not None
        person.remember("credit_purchase_entry", entry.id)


def _credit_order(session: Session, storage: LocalStorage, person: Person) -> None:
    order = CreditOrder(user_id=person.user_id, pack_key="starter", product_id="prod_starter", label="Starter",
                        credits=100, amount=500, currency="EUR", status=OrderStatus.PAID,
                        customer_email=person.email, country="DE", vat_number="DE136695976", paid_amount=500,
                        paid_at=now())
    session.add(order)
    session.flush()
    person.remember("credit_order", order.id)


def _request_log(session: Session, storage: LocalStorage, person: Person) -> None:
    record = RequestLog(kind="page", method="GET", route="/gallery/{image_id}", status=200, duration_ms=12.5,
                        bytes=2048, ip="203.0.113.7", browser="Firefox 130", os="Ubuntu", device="desktop",
                        user_id=person.user_id, request_id=uuid.uuid4().hex[:16])
    session.add(record)
    session.flush()
    person.remember("request_log", record.id)


def _audit_entry(session: Session, storage: LocalStorage, person: Person) -> None:
    record = AuditEntry(action="user.suspend", target_kind="user", target_id=str(person.user_id),
                        target_user_id=person.user_id, reason="Repeated spam in shared prompts")
    session.add(record)
    session.flush()
    person.remember("audit_entry", record.id)


def _prompt_strike(session: Session, storage: LocalStorage, person: Person) -> None:
    record = PromptStrike(user_id=person.user_id, term="forbidden")
    session.add(record)
    session.flush()
    person.remember("prompt_strike", record.id)


def _evidence_hold(session: Session, storage: LocalStorage, person: Person) -> None:
    # Released: an account under a live hold is not erased at all (tests/services/test_holds.py).
    record = EvidenceHold(user_id=person.user_id, reason=f"Report about {person.name}", released_at=now(),
                          release_reason="case closed")
    session.add(record)
    session.flush()
    person.remember("evidence_hold", record.id)


def _support_ticket(session: Session, storage: LocalStorage, person: Person) -> None:
    ticket = SupportTicket(user_id=person.user_id, email=person.email, name=person.name,
                           subject=f"Help with {person.prompt}")
    session.add(ticket)
    session.flush()
    person.remember("support_ticket", ticket.id)


def _support_message(session: Session, storage: LocalStorage, person: Person) -> None:
    ticket_id = person.ids["support_ticket"][0]
    for from_staff, body in ((False, f"My prompt {person.prompt} failed"), (True, "We are looking into it")):
        message = SupportMessage(ticket_id=ticket_id, user_id=person.user_id, from_staff=from_staff, body=body)
        session.add(message)
        session.flush()
        person.remember("support_message", message.id)


def _feedback(session: Session, storage: LocalStorage, person: Person) -> None:
    record = Feedback(user_id=person.user_id, generation_id=person.ids["generation"][0], rating=-1,
                      comment=f"Not what I meant by {person.prompt}")
    session.add(record)
    session.flush()
    person.remember("feedback", record.id)


# Filled in this order: parents before the rows that refer to them.
FACTORIES: dict[str, Factory] = {
    "user": _user,
    "auth_session": _auth_session,
    "account_token": _account_token,
    "oidc_identity": _oidc_identity,
    "policy_acceptance": _policy_acceptance,
    "upload": _upload,
    "generation": _generation,
    "image": _image,
    "api_key": _api_key,
    "outbox_message": _outbox_message,
    "data_export": _data_export,
    "privacy_request": _privacy_request,
    "consent_event": _consent_event,
    "credit_account": _credit_account,
    "credit_entry": _credit_entry,
    "credit_purchase_entry": _credit_purchase_entry,
    "credit_order": _credit_order,
    "request_log": _request_log,
    "audit_entry": _audit_entry,
    "prompt_strike": _prompt_strike,
    "evidence_hold": _evidence_hold,
    "support_ticket": _support_ticket,
    "support_message": _support_message,
    "feedback": _feedback,
}


def user_tables() -> set[str]:
    """Every table the inventory declares as personal data about account holders."""
    return {entry.table for entry in inventory.entries() if entry.declaration.subject is Subject.USER}


def missing_factories() -> set[str]:
    return user_tables() - set(FACTORIES)


def fill(storage: LocalStorage, *, email: str, name: str, prompt: str, negative_prompt: str) -> Person:
    """Create an onboarded account and fill every inventory table with its rows (and files); committed."""
    if missing := missing_factories():
        raise AssertionError(f"no personal-data factory for table(s) {sorted(missing)}: add one to "
                             "tests/utils/personal_data.py")
    with session_scope() as session:
        user = users.create(session, email=email, full_name=name, password=PASSWORD)
        user.email_verified_at = user.age_confirmed_at = now()
        session.add(user)
        session.flush()
        person = Person(user.id, user.email, name, prompt, negative_prompt)
        for table in user_tables_in_fill_order():
            FACTORIES[table](session, storage, person)
    return person


def user_tables_in_fill_order() -> list[str]:
    declared = user_tables()
    return [table for table in FACTORIES if table in declared]
