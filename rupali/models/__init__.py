"""All table models; importing this package registers them with ``SQLModel.metadata``."""

from rupali.models.auth import AccountToken, AuthAttempt, AuthSession, OidcIdentity, PolicyAcceptance, TokenPurpose
from rupali.models.billing import (
    PAYMENT_KINDS,
    CreditAccount,
    CreditEntry,
    CreditOrder,
    CreditPurchaseEntry,
    CreditRefund,
    CreemEvent,
    DeliveryOutcome,
    EntryKind,
    OrderStatus,
    WebhookDelivery,
)
from rupali.models.consent import CookieConsent
from rupali.models.generation import ApiKey, ApiKeyScope, Generation, GenerationStatus, Image, Upload
from rupali.models.job_lock import JobLock
from rupali.models.job_run import JobRun, JobRunStatus
from rupali.models.legal import LegalDocumentVersion
from rupali.models.mail import MailKind, MailStatus, OutboxMessage
from rupali.models.privacy import (
    ConsentEvent,
    ConsentKind,
    DataExport,
    ErasureRecord,
    ExportStatus,
    PrivacyRequest,
    RequestKind,
    RequestSource,
    RequestStatus,
)
from rupali.models.user import Role, User

__all__ = [
    "PAYMENT_KINDS",
    "AccountToken",
    "ApiKey",
    "ApiKeyScope",
    "AuthAttempt",
    "AuthSession",
    "ConsentEvent",
    "ConsentKind",
    "CookieConsent",
    "CreditAccount",
    "CreditEntry",
    "CreditOrder",
    "CreditPurchaseEntry",
    "CreditRefund",
    "CreemEvent",
    "DataExport",
    "DeliveryOutcome",
    "EntryKind",
    "ErasureRecord",
    "ExportStatus",
    "Generation",
    "GenerationStatus",
    "Image",
    "JobLock",
    "JobRun",
    "JobRunStatus",
    "LegalDocumentVersion",
    "MailKind",
    "MailStatus",
    "OidcIdentity",
    "OrderStatus",
    "OutboxMessage",
    "PolicyAcceptance",
    "PrivacyRequest",
    "RequestKind",
    "RequestSource",
    "RequestStatus",
    "Role",
    "TokenPurpose",
    "Upload",
    "User",
    "WebhookDelivery",
]
