"""All table models; importing this package registers them with ``SQLModel.metadata``."""

from rupali.models.consent import CookieConsent
from rupali.models.job_run import JobRun, JobRunStatus
from rupali.models.legal import LegalDocumentVersion
from rupali.models.user import Role, User

__all__ = ["CookieConsent", "JobRun", "JobRunStatus", "LegalDocumentVersion", "Role", "User"]
