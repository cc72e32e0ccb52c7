"""Retention rules and sub-processors come from configuration; defaults are the seed policy's."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rupali.config import Settings
from rupali.policy import RetentionKey, retention_rules, subprocessors

pytestmark = pytest.mark.sqlite_only


def test_default_retention_is_the_seed_policy():
    described = {key: rule.describe() for key, rule in retention_rules(Settings()).items()}
    assert described == {
        RetentionKey.ACCOUNT: "Until account deletion + 30 days",
        RetentionKey.CONTENT: "Until you delete them or they expire (this installation sets no automatic expiry)",
        RetentionKey.PROMPTS: "Until you delete them",
        RetentionKey.TRANSACTIONS: "7 years",
        RetentionKey.TECHNICAL_LOGS: "90 days",
        RetentionKey.COOKIE_CONSENT: "365 days",
        RetentionKey.EXPORTS: "7 days",
        RetentionKey.REQUESTS: "3 years",
        RetentionKey.SUPPORT: "365 days after the last message",
    }


def test_retention_follows_settings():
    rules = retention_rules(Settings(retention_technical_log_days=30, content_expiry_days=14,
                                     retention_transaction_years=10))
    assert rules[RetentionKey.TECHNICAL_LOGS].period == timedelta(days=30)
    assert rules[RetentionKey.CONTENT].describe() == "Until you delete them or they expire (14 days after creation)"
    assert rules[RetentionKey.TRANSACTIONS].describe() == "10 years"
    assert rules[RetentionKey.TRANSACTIONS].period >= timedelta(days=3652)  # never shorter than 10 real years


def test_embedded_default_has_no_subprocessors():
    assert subprocessors(Settings()) == []


def test_each_configured_service_becomes_a_subprocessor():
    settings = Settings(
        umami_website_id="w",
        umami_script_url="https://stats.example/script.js", hosting_provider="railway", cdn_provider="cloudflare",
        extra_subprocessors='[{"name": "Postmark", "purpose": "E-mail delivery", "location": "USA", '
                            '"transfer": "SCCs"}]',
    )
    names = [processor.name for processor in subprocessors(settings)]
    assert names == ["Railway", "Cloudflare", "Umami", "Postmark"]


def test_analytics_needs_both_website_id_and_script():
    assert subprocessors(Settings(umami_website_id="w")) == []
