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
from rupali.models.moderation import EvidenceHold, PromptStrike
from rupali.models.operations import AuditEntry, AuditEntryImmutable, RequestLog
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
from rupali.models.support import Feedback, SupportMessage, SupportTicket, TicketStatus
from rupali.models.user import Role, User

__all__ = [
    "PAYMENT_KINDS",
    "AccountToken",
    "ApiKey",
    "ApiKeyScope",
    "AuditEntry",
    "AuditEntryImmutable",
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
    "EvidenceHold",
    "ExportStatus",
    "Feedback",
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
    "PromptStrike",
    "RequestKind",
    "RequestLog",
    "RequestSource",
    "RequestStatus",
    "Role",
    "SupportMessage",
    "SupportTicket",
    "TicketStatus",
    "TokenPurpose",
    "Upload",
    "User",
    "WebhookDelivery",
]
