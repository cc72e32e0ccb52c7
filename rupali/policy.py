"""The policy objects: retention rules and sub-processors, built from :class:`~rupali.config.Settings`.

These objects are the single source for both sides of every promise: the legal pages render them, and the
scheduler jobs, consent checks and (later) export and erasure enforce them. Change a number here or in the
settings and the page and the behaviour change together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from rupali.config import Settings, parsed_extra_subprocessors

EXPORT_DAYS = 7  # an export can be downloaded for a week, then the file is deleted


class RetentionKey(StrEnum):
    """The data types of the policy's retention table."""

    ACCOUNT = "account"
    CONTENT = "content"
    PROMPTS = "prompts"
    TRANSACTIONS = "transactions"
    TECHNICAL_LOGS = "technical_logs"
    COOKIE_CONSENT = "cookie_consent"
    EXPORTS = "exports"
    REQUESTS = "requests"
    SUPPORT = "support"


class RetentionTrigger(StrEnum):
    """What starts the retention clock."""

    AFTER_ACCOUNT_DELETION = "after_account_deletion"
    AFTER_CREATION = "after_creation"
    AFTER_LAST_MESSAGE = "after_last_message"
    UNTIL_DELETED = "until_deleted"
    UNTIL_DELETED_OR_EXPIRED = "until_deleted_or_expired"


@dataclass(frozen=True)
class RetentionRule:
    """How long one type of data is kept, and why."""

    key: RetentionKey
    data_type: str
    trigger: RetentionTrigger
    period: timedelta | None
    reason: str

    def describe(self) -> str:
        """The period in plain words, as the policy table shows it."""
        days = self.period.days if self.period is not None else None
        match self.trigger:
            case RetentionTrigger.AFTER_ACCOUNT_DELETION:
                return "Until account deletion" if not days else f"Until account deletion + {_days(days)}"
            case RetentionTrigger.AFTER_CREATION:
                assert days is not None
                return _years_or_days(days)
            case RetentionTrigger.AFTER_LAST_MESSAGE:
                assert days is not None
                return f"{_years_or_days(days)} after the last message"
            case RetentionTrigger.UNTIL_DELETED:
                return "Until you delete them"
            case RetentionTrigger.UNTIL_DELETED_OR_EXPIRED:
                if days is None:
                    return "Until you delete them or they expire (this installation sets no automatic expiry)"
                return f"Until you delete them or they expire ({_days(days)} after creation)"


def retention_rules(settings: Settings) -> dict[RetentionKey, RetentionRule]:
    """The retention table in force for these settings, in the order the policy lists it."""
    expiry = settings.content_expiry_days
    rules = [
        RetentionRule(RetentionKey.ACCOUNT, "Account data", RetentionTrigger.AFTER_ACCOUNT_DELETION,
                      timedelta(days=settings.retention_account_grace_days), "Service delivery & grace period"),
        RetentionRule(RetentionKey.CONTENT, "Generated content", RetentionTrigger.UNTIL_DELETED_OR_EXPIRED,
                      timedelta(days=expiry) if expiry else None, "Your content ownership"),
        RetentionRule(RetentionKey.PROMPTS, "Prompts", RetentionTrigger.UNTIL_DELETED, None,
                      "Your content ownership"),
        # 365-day years keep the arithmetic exact; the extra leap days only lengthen the legal minimum.
        RetentionRule(RetentionKey.TRANSACTIONS, "Transaction records", RetentionTrigger.AFTER_CREATION,
                      timedelta(days=366 * settings.retention_transaction_years), "Tax law requirement"),
        RetentionRule(RetentionKey.TECHNICAL_LOGS, "Technical logs", RetentionTrigger.AFTER_CREATION,
                      timedelta(days=settings.retention_technical_log_days), "Security & debugging"),
        RetentionRule(RetentionKey.COOKIE_CONSENT, "Cookie consent", RetentionTrigger.AFTER_CREATION,
                      timedelta(days=settings.retention_cookie_consent_days), "Legal requirement"),
        RetentionRule(RetentionKey.EXPORTS, "Data exports (your download)", RetentionTrigger.AFTER_CREATION,
                      timedelta(days=EXPORT_DAYS), "Time to download your data"),
        # Kept without the link to you once your account is erased: proof that requests were answered on time.
        RetentionRule(RetentionKey.REQUESTS, "Records of data-protection requests", RetentionTrigger.AFTER_CREATION,
                      timedelta(days=366 * settings.retention_request_years), "Accountability (GDPR Art. 5(2))"),
        RetentionRule(RetentionKey.SUPPORT, "Support conversations", RetentionTrigger.AFTER_LAST_MESSAGE,
                      timedelta(days=settings.retention_support_days), "Answering your questions"),
    ]
    return {rule.key: rule for rule in rules}


@dataclass(frozen=True)
class SubProcessor:
    """A third party that processes personal data on the operator's behalf."""

    name: str
    purpose: str
    location: str
    transfer: str
    data: str
    website: str = ""


def subprocessors(settings: Settings) -> list[SubProcessor]:
    """The sub-processors this installation actually sends data to, derived from what is configured."""
    active: list[SubProcessor] = []
    if settings.oidc_enabled and "clerk" in (settings.oidc_metadata_url or "").lower():
        active.append(SubProcessor("Clerk", "Authentication", "USA", "SCCs + DPF",
                                   "E-mail address, name, sign-in events", "https://clerk.com"))
    if settings.runware_api_key:
        active.append(SubProcessor("Runware", "AI content generation", "UK", "SCCs",
                                   "Prompts, generation parameters, uploaded images", "https://runware.ai"))
    if settings.hosting_provider == "railway":
        active.append(SubProcessor("Railway", "Application hosting", "USA", "SCCs",
                                   "All data stored by the service", "https://railway.com"))
    if settings.cdn_provider == "cloudflare":
        active.append(SubProcessor("Cloudflare", "CDN & security", "USA", "SCCs + DPF",
                                   "IP address, requests in transit", "https://www.cloudflare.com"))
    if settings.creem_enabled:
        # Creem is the merchant of record: it sells the credit packs, takes the card and handles VAT.
        active.append(SubProcessor("Creem", "Payment processing & tax compliance (merchant of record)",
                                   "Estonia (EU)", "EU-based",
                                   "E-mail address, country, VAT number, order details; card details are entered at "
                                   "Creem, never at Rupali", "https://creem.io"))
    if settings.analytics_enabled:
        active.append(SubProcessor("Umami", "Privacy-first website analytics", "USA",
                                   "Privacy by design (cookie-less)", "Page views without cookies or identifiers",
                                   "https://umami.is"))
    for extra in parsed_extra_subprocessors(settings.extra_subprocessors) if settings.extra_subprocessors else []:
        active.append(SubProcessor(extra["name"], extra["purpose"], extra["location"], extra["transfer"],
                                   extra.get("data", ""), extra.get("website", "")))
    return active


def _days(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def _years_or_days(days: int) -> str:
    if days % 366 == 0:
        years = days // 366
        return "1 year" if years == 1 else f"{years} years"
    return _days(days)
