"""All table models; importing this package registers them with ``SQLModel.metadata``."""

from rupali.models.auth import AccountToken, AuthAttempt, AuthSession, OidcIdentity, PolicyAcceptance, TokenPurpose
from rupali.models.consent import CookieConsent
from rupali.models.generation import ApiKey, ApiKeyScope, Generation, GenerationStatus, Image, Upload
from rupali.models.job_run import JobRun, JobRunStatus
from rupali.models.legal import LegalDocumentVersion
from rupali.models.mail import MailKind, MailStatus, OutboxMessage
from rupali.models.user import Role, User

__all__ = [
    "AccountToken",
    "ApiKey",
    "ApiKeyScope",
    "AuthAttempt",
    "AuthSession",
    "CookieConsent",
    "Generation",
    "GenerationStatus",
    "Image",
    "JobRun",
    "JobRunStatus",
    "LegalDocumentVersion",
    "MailKind",
    "MailStatus",
    "OidcIdentity",
    "OutboxMessage",
    "PolicyAcceptance",
    "Role",
    "TokenPurpose",
    "Upload",
    "User",
]
