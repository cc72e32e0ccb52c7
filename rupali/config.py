"""Settings: every knob is an environment variable (``RUPALI_*``, plus Railway's ``PORT`` and ``DATABASE_URL``).

Embedded defaults run the whole product on one machine with nothing else installed: a SQLite file and a media
folder under one data directory, the offline generator, and mail printed to the log. ``RUPALI_ENV=production``
refuses unsafe values (see :meth:`Settings.production_problems`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(Exception):
    """A configuration problem explained in one line, shown to the operator without a traceback."""


# Sample operator details from the seed policy. They make the embedded default read naturally, but a production
# deployment must state its own (explicitly set, even when equal) so nobody publishes someone else's address.
_SAMPLE_OPERATOR = {"operator_name": "Rupali AI", "operator_address": "Copenhagen, Denmark",
                    "operator_email": "support@rupali.ai"}


class Settings(BaseSettings):
    """Effective configuration, read from the environment and an optional ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="RUPALI_", env_file=".env", extra="ignore", populate_by_name=True)

    # --- runtime -------------------------------------------------------------------------------------------
    env: Literal["development", "production"] = Field("development", description="`production` enforces safe values")
    data_dir: Path = Field(Path("data"), description="Holds the SQLite file, media, sessions and the storage secret")
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("RUPALI_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; default `sqlite:///<data_dir>/rupali.db`. `postgres://` URLs are accepted")
    media_dir: Path | None = Field(None, description="Where images live; default `<data_dir>/media`")
    media_backend: Literal["local", "s3"] = Field(
        "local", description="Where media are stored: `local` (`RUPALI_MEDIA_DIR`) or `s3` (an S3-compatible bucket)")
    s3_bucket: str | None = Field(None, min_length=3, max_length=63, description="Bucket of the `s3` media backend")
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint (R2, MinIO, B2, …); unset = AWS S3 of `RUPALI_S3_REGION`")
    s3_region: str = Field("us-east-1", pattern=r"^[a-z0-9-]{1,40}$",
                           description="Region of the bucket (`auto` for Cloudflare R2)")
    s3_access_key_id: str | None = Field(None, max_length=256, description="Access key id of the `s3` backend")
    s3_secret_access_key: SecretStr | None = Field(None, description="Secret access key of the `s3` backend")
    s3_prefix: str = Field("", pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*)?$",
                           max_length=200, description="Key prefix inside the bucket (several installations in one)")
    s3_allow_http: bool = Field(
        False, description="Allow a plain `http://` S3 endpoint in production: only for a bucket on a private network "
                           "(a MinIO beside the app, as in deploy/docker-compose.yml)")
    media_delivery: Literal["stream", "redirect"] = Field(
        "stream", description="`redirect`: authorized image routes answer 307 to a short-lived presigned URL "
                              "of the bucket (`s3` only; local media are always streamed)")
    media_redirect_seconds: int = Field(60, ge=5, le=3600, description="How long a presigned media URL is valid")
    redis_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RUPALI_REDIS_URL", "REDIS_URL"),
        description="Redis for what several instances share: rate-limit windows and session changes "
                    "(`redis://`, `rediss://` or `unix://`); unset, they stay in this process")
    redis_key_prefix: str = Field("rupali:", pattern=r"^[A-Za-z0-9_.:-]{1,40}$",
                                  description="Prefix of every Redis key and channel this installation uses")
    host: str = Field("127.0.0.1", description="Interface to listen on (`0.0.0.0` on Railway)")
    port: int = Field(8080, ge=1, le=65535, validation_alias=AliasChoices("RUPALI_PORT", "PORT"),
                      description="Port to listen on; Railway's `PORT` is respected")
    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="Public base URL used in links and mails; in development it defaults to the address served")
    storage_secret: SecretStr | None = Field(
        None, description="Signs cookies; generated on first run into `<data_dir>/storage_secret` when unset")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log verbosity")
    heartbeat_seconds: int = Field(60, ge=5, le=3600, description="Interval of the scheduler's heartbeat job")
    drain_seconds: int = Field(
        20, ge=0, le=3600,
        description="On SIGTERM, how long running generations may still finish; those still waiting for their "
                    "provider then are queued again and run after the restart (set the platform's stop timeout "
                    "longer)")
    scheduler_lease_seconds: int = Field(
        30, ge=3, le=600,
        description="How long the instance that runs the scheduled jobs holds its lease; when it dies, another "
                    "instance takes over within this time and a third of it")

    # --- operator (the data controller) -----------------------------------------------------------------------
    operator_name: str = Field(_SAMPLE_OPERATOR["operator_name"], min_length=1, max_length=200,
                               description="Data controller's legal name, shown in the legal pages")
    operator_address: str = Field(_SAMPLE_OPERATOR["operator_address"], min_length=1, max_length=500,
                                  description="Data controller's postal address")
    operator_email: str = Field(_SAMPLE_OPERATOR["operator_email"], min_length=3, max_length=254,
                                description="Contact address for support and privacy requests")
    supervisory_authority_name: str = Field(
        "your local data protection authority", description="Name of the supervisory authority shown in the policy")
    supervisory_authority_url: str = Field(
        "https://www.edpb.europa.eu/about-edpb/about-edpb/members_en",
        description="Link to the supervisory authority (default: the EDPB list of all EU authorities)")
    minimum_age: int = Field(18, ge=16, le=99, description="Minimum age to use the service")
    gdpr_response_days: int = Field(30, ge=1, le=90, description="Days within which data requests are answered")

    # --- retention (rendered in the policy and enforced by the scheduler jobs) -----------------------------
    retention_account_grace_days: int = Field(30, ge=0, le=365, description="Days account data is kept after deletion")
    retention_transaction_years: int = Field(7, ge=1, le=30, description="Years transaction records are kept")
    retention_technical_log_days: int = Field(90, ge=1, le=3650, description="Days technical logs are kept")
    retention_support_days: int = Field(
        365, ge=30, le=3650, description="Days a support conversation is kept after its last message")
    retention_cookie_consent_days: int = Field(365, ge=1, le=730, description="Days a cookie choice is remembered")
    retention_request_years: int = Field(
        3, ge=1, le=10, description="Years records of data-protection requests are kept (without the link to the "
                                    "person once the account is erased)")
    content_expiry_days: int | None = Field(
        None, ge=1, le=36500, description="Generated images expire this many days after creation; unset = never")

    # --- sign-in ---------------------------------------------------------------------------------------------
    password_signin: bool = Field(True, description="Allow e-mail + password accounts (`false` for OIDC-only)")
    oidc_name: str = Field("Single sign-on", max_length=60, description="Button label of the OpenID Connect provider")
    oidc_metadata_url: str | None = Field(
        None, description="OpenID Connect discovery URL (Clerk, Google, Microsoft, Keycloak, Authentik…)")
    oidc_client_id: str | None = Field(None, description="OAuth client id registered at the provider")
    oidc_client_secret: SecretStr | None = Field(None, description="OAuth client secret")
    oidc_scopes: str = Field("openid profile email", description="Scopes requested from the provider")
    session_idle_minutes: int = Field(60 * 24 * 7, ge=5, le=60 * 24 * 90,
                                      description="A session ends after this long without activity")
    session_absolute_days: int = Field(30, ge=1, le=90, description="A session ends this long after sign-in")
    signin_max_failures: int = Field(5, ge=1, le=100, description="Failed attempts per address before a lockout")
    lockout_minutes: int = Field(15, ge=1, le=1440, description="How long a lockout lasts")
    forwarded_allow_ips: str = Field(
        "", description="Addresses or networks (comma-separated) of your own reverse proxies, whose "
                        "X-Forwarded-For entries are trusted for client IPs")
    trusted_proxy_hops: int = Field(
        0, ge=0, le=5, description="Number of reverse proxies in front of the app that append to X-Forwarded-For "
                                   "(1 on Railway); the client IP is taken that many entries from the right")

    # --- mail ----------------------------------------------------------------------------------------------------
    smtp_host: str | None = Field(None, description="SMTP server; unset = mail is printed to the log and kept")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port")
    smtp_username: str | None = Field(None, description="SMTP user name")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="`starttls` (port 587), `tls` (implicit, port 465) or `none` (local relays only)")
    mail_from: str = Field("Rupali <no-reply@rupali.localhost>", description="Sender of all mail")
    mail_poll_seconds: int = Field(15, ge=1, le=3600, description="How often the outbox is delivered")

    # --- image generation -------------------------------------------------------------------------------------
    offline_generator: bool = Field(True, description="Offer the built-in offline sketch generator (not AI)")
    runware_api_key: SecretStr | None = Field(None, description="Runware API key; enables the Runware provider")
    runware_url: str = Field("https://api.runware.ai/v1", description="Runware REST endpoint")
    runware_models: str = Field(
        "runware:100@1=FLUX.1 schnell,runware:101@1=FLUX.1 dev",
        description="Runware models offered: comma-separated `AIR id=Label` pairs")
    runware_timeout_seconds: int = Field(120, ge=5, le=900, description="How long one Runware request may take")
    a1111_url: str | None = Field(None, description="AUTOMATIC1111 / Forge / SD.Next API base URL, e.g. "
                                                    "`http://gpu-box:7860`")
    a1111_username: str | None = Field(None, description="User name for the A1111 API (`--api-auth`)")
    a1111_password: SecretStr | None = Field(None, description="Password for the A1111 API")
    a1111_timeout_seconds: int = Field(600, ge=5, le=3600, description="How long one A1111 request may take")

    generation_concurrency: int = Field(2, ge=1, le=32, description="Generations running at once, in total")
    generation_per_user: int = Field(1, ge=1, le=8, description="Generations running at once for one person")
    generation_cluster_limit: int | None = Field(
        None, ge=1, le=1024,
        description="On PostgreSQL, generations running at once across all instances (unset: each instance's "
                    "RUPALI_GENERATION_CONCURRENCY, added up)")
    job_lease_seconds: int = Field(
        30, ge=3, le=600,
        description="On PostgreSQL, how long an instance's claim on a running generation holds without its "
                    "heartbeat; a job whose instance died is queued again (once; then failed) after this time")
    generation_queue_per_user: int = Field(8, ge=1, le=100, description="Generations one person may have waiting")
    max_images_per_request: int = Field(4, ge=1, le=16, description="Most images one request may ask for")
    prompt_blocklist: str = Field(
        "", description="Comma-separated words or phrases refused in prompts (case-insensitive, whole words)")
    nsfw_policy: Literal["allow", "blur", "block"] = Field(
        "blur", description="Images scored at or above the threshold: `allow`, `blur` (click to reveal) or `block`")
    nsfw_threshold: float = Field(0.8, ge=0.0, le=1.0, description="NSFW score (0–1) at which the policy applies")
    upload_max_mb: int = Field(10, ge=1, le=50, description="Largest image-to-image upload, in MB")
    upload_max_megapixels: int = Field(40, ge=1, le=200, description="Largest image-to-image upload, in megapixels")

    # --- content credentials (C2PA): who signs the provenance every generated image carries ------------------
    c2pa_certificate: Path | None = Field(
        None, description="PEM certificate chain (signing certificate first) for Content Credentials; unset: the "
                          "installation makes its own under a local CA in `<data_dir>/content_credentials.pem`")
    c2pa_private_key: Path | None = Field(None, description="PEM private key of `RUPALI_C2PA_CERTIFICATE`")
    c2pa_algorithm: Literal["ES256", "PS256"] = Field(
        "ES256", description="Signature algorithm of that key: `ES256` (P-256) or `PS256` (RSA-PSS)")
    c2pa_tsa_url: str | None = Field(
        None, description="RFC 3161 timestamp authority URL; signatures then outlive the signing certificate")

    # --- operations: technical log, metrics, abuse limits ------------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        "text", description="`json` prints one JSON object per log line to stdout (for Railway and log shippers)")
    technical_log: bool = Field(
        True, description="Record one row per request and page view (route, status, timing, IP, browser) for "
                          "security and debugging; kept for the technical-log retention period")
    page_connect_seconds: float = Field(
        10, ge=1, le=120, description="How long a page whose browser never opens its live connection (a crawler, a "
        "link preview) is kept in memory, in seconds")
    metrics_enabled: bool = Field(False, description="Serve Prometheus metrics at `/metrics` (needs a token)")
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token a scraper sends to `/metrics` (`Authorization: Bearer …`), 24+ characters")
    rate_limit_generations_per_minute: int = Field(
        10, ge=1, le=10_000, description="Generation submissions one person may make per minute (studio and API)")
    rate_limit_generations_per_ip_minute: int = Field(
        30, ge=1, le=100_000, description="Generation submissions one IP address may make per minute")
    rate_limit_api_per_minute: int = Field(
        120, ge=1, le=100_000, description="REST API requests one person may make per minute")
    rate_limit_api_per_ip_minute: int = Field(
        300, ge=1, le=1_000_000, description="REST API requests one IP address may make per minute")
    moderation_strikes_per_day: int = Field(
        5, ge=0, le=1000, description="Prompts stopped by the blocklist within 24 hours that suspend an account "
                                      "pending review (0 = never)")
    generation_daily_cap: int | None = Field(
        None, ge=1, le=1_000_000, description="Most generations one person may submit per UTC day (unset = no cap)")

    # --- billing (credits) -------------------------------------------------------------------------------------
    billing: Literal["off", "credits", "creem"] = Field(
        "off", description="`off`: everything is free; `credits`: generations cost credits (sign-up bonus, daily "
                           "allowance, administrator grants); `creem`: the same, plus credit packs sold through Creem")
    credits_signup_bonus: int = Field(50, ge=0, le=1_000_000, description="Credits every account receives once")
    credits_daily_allowance: int = Field(
        0, ge=0, le=1_000_000, description="Free credits per UTC day, without rollover: the balance is topped up to "
                                           "this once a day (0 = none)")
    credits_size_tiers: str = Field(
        "768x768=1,1024x1024=2,*=4",
        description="Credits per image by size: `WxH=credits` pairs, each covering images up to that many pixels, "
                    "ending with `*=credits` for anything larger")
    credits_model_prices: str = Field(
        "", description="Per-model prices replacing the size tiers: `provider:model=credits` (every size) or "
                        "`=c1/c2/…` (one per tier), comma-separated, e.g. `offline:sketch-v1=0`")
    credits_steps_included: int = Field(30, ge=1, le=1000, description="Steps an image's price includes")
    credits_steps_factor: float = Field(
        0.0, ge=0.0, le=1.0, description="Each step above the included ones adds this share of the image price "
                                         "(0.02 = 2 % per step; 0 = steps never change the price)")
    credits_img2img_factor: float = Field(
        1.0, ge=0.1, le=10.0, description="Price multiplier for image-to-image generations")
    credits_alert_threshold: int = Field(
        0, ge=0, le=1_000_000, description="A balance alert is mailed when the balance falls below this (0 = never)")

    # --- Creem (billing = creem) ------------------------------------------------------------------------------
    creem_api_url: str = Field("https://api.creem.io/v1",
                               description="Creem API base; `https://test-api.creem.io/v1` for test mode")
    creem_api_key: SecretStr | None = Field(None, description="Creem API key (sent as `x-api-key`)")
    creem_webhook_secret: SecretStr | None = Field(
        None, description="Creem webhook signing secret: `creem-signature` is checked against it")
    credit_packs: str = Field(
        "", description="JSON list of credit packs sold through Creem: `[{key, product_id, credits, price_cents, "
                        "currency, label}]`; price and currency must equal the Creem product's")

    # --- third parties (each one, when configured, becomes a listed sub-processor) ------------------------
    umami_website_id: str | None = Field(None, description="Umami website id; with the script URL enables analytics")
    umami_script_url: str | None = Field(None, description="Umami tracker URL, e.g. `https://umami.example/script.js`")
    hosting_provider: Literal["railway", "self"] | None = Field(
        None, description="Where the app runs; detected as `railway` from Railway's variables, else `self`")
    cdn_provider: Literal["cloudflare"] | None = Field(None, description="Set to `cloudflare` when behind Cloudflare")
    extra_subprocessors: str | None = Field(
        None, description="JSON list of further sub-processors: `[{name, purpose, location, transfer}]`")

    # ----------------------------------------------------------------------------------------------------------
    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("is not a Redis URL (expected redis://, rediss:// or unix://)")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value.startswith("postgres://"):  # Heroku/Railway style
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):  # psycopg 3 is the driver we ship
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("is not a valid database URL (expected sqlite:///… or postgresql://…)") from exc
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError(f"uses unsupported database {url.get_backend_name()!r} (use SQLite or PostgreSQL)")
        return value

    @field_validator("public_url", "supervisory_authority_url", "oidc_metadata_url", "runware_url", "a1111_url",
                     "s3_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        if "*" in value:
            raise ValueError("cannot be `*`: trusting every hop lets any client choose its own address. Name your "
                             "proxies' addresses, or set RUPALI_TRUSTED_PROXY_HOPS (1 on Railway)")
        for part in (piece.strip() for piece in value.split(",")):
            if part:
                try:
                    ipaddress.ip_network(part, strict=False)
                except ValueError:
                    raise ValueError(f"{part!r} is not an IP address or network") from None
        return value

    @field_validator("operator_email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        local, _, domain = value.partition("@")
        if not local or "." not in domain or " " in value:
            raise ValueError("must be an e-mail address")
        return value

    @field_validator("extra_subprocessors")
    @classmethod
    def _extra_json(cls, value: str | None) -> str | None:
        if value:
            parsed_extra_subprocessors(value)
        return value

    @field_validator("credits_size_tiers")
    @classmethod
    def _size_tiers(cls, value: str) -> str:
        parsed_size_tiers(value)
        return value

    @model_validator(mode="after")
    def _model_prices(self) -> Settings:
        # Checked against the tiers, so after both fields are read; an error names the variable.
        try:
            parsed_model_prices(self.credits_model_prices, len(parsed_size_tiers(self.credits_size_tiers)))
        except ValueError as exc:
            raise ValueError(f"RUPALI_CREDITS_MODEL_PRICES {exc}") from None
        return self

    @field_validator("credit_packs")
    @classmethod
    def _credit_packs(cls, value: str) -> str:
        parsed_credit_packs(value)
        return value

    @model_validator(mode="after")
    def _c2pa_pair(self) -> Settings:
        # A certificate without its key (or the other way round) cannot sign; half a configuration is a mistake.
        if (self.c2pa_certificate is None) != (self.c2pa_private_key is None):
            raise ValueError("RUPALI_C2PA_CERTIFICATE and RUPALI_C2PA_PRIVATE_KEY must be set together")
        if self.c2pa_tsa_url is not None and not re.match(r"https?://[^\s]+$", self.c2pa_tsa_url):
            raise ValueError("RUPALI_C2PA_TSA_URL must be an http:// or https:// URL")
        return self

    @model_validator(mode="after")
    def _creem_complete(self) -> Settings:
        # Selling credits without a key or a webhook secret would take money and never grant anything.
        if self.billing == "creem":
            missing = [name for name, value in (("RUPALI_CREEM_API_KEY", self.creem_api_key),
                                                ("RUPALI_CREEM_WEBHOOK_SECRET", self.creem_webhook_secret),
                                                ("RUPALI_CREDIT_PACKS", self.credit_packs.strip())) if not value]
            if missing:
                raise ValueError("RUPALI_BILLING=creem needs " + ", ".join(missing))
        return self

    @model_validator(mode="after")
    def _metrics_token(self) -> Settings:
        # Metrics name routes, queues and error rates: never served to whoever asks.
        if self.metrics_enabled:
            token = self.metrics_token.get_secret_value() if self.metrics_token else ""
            if len(token) < 24:
                raise ValueError("RUPALI_METRICS_ENABLED needs RUPALI_METRICS_TOKEN of at least 24 characters")
        return self

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.media_backend == "s3":
            needed = (("RUPALI_S3_BUCKET", self.s3_bucket), ("RUPALI_S3_ACCESS_KEY_ID", self.s3_access_key_id),
                      ("RUPALI_S3_SECRET_ACCESS_KEY", self.s3_secret_access_key))
            missing = [name for name, value in needed if not value]
            if missing:
                raise ValueError("RUPALI_MEDIA_BACKEND=s3 needs " + ", ".join(missing))
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if "public_url" not in self.model_fields_set and not self.is_production:
            # Links in mails must lead back to where this instance really listens (say RUPALI_PORT=9101);
            # production refuses to start without an explicit https:// address instead.
            self.public_url = served_url(self.host, self.port)
        if self.hosting_provider is None:
            self.hosting_provider = "railway" if os.environ.get("RAILWAY_PROJECT_ID") else "self"
        if not self.password_signin and not self.oidc_enabled:
            raise ValueError("no way to sign in: RUPALI_PASSWORD_SIGNIN is false and OpenID Connect is not "
                             "configured (set RUPALI_OIDC_METADATA_URL, _CLIENT_ID and _CLIENT_SECRET)")
        if self.env == "production" and (problems := self.production_problems()):
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    def production_problems(self) -> list[str]:
        """Return what makes these settings unsafe for production (empty when all is well)."""
        problems = []
        if not self.public_url.startswith("https://"):
            problems.append(f"RUPALI_PUBLIC_URL must be https:// (got {self.public_url})")
        if self.media_backend == "s3" and self.s3_endpoint_url and self.s3_endpoint_url.startswith("http://") \
                and not _loopback(self.s3_endpoint_url) and not self.s3_allow_http:
            # Keys and every image would cross the network in clear; loopback (a MinIO beside the app) is fine.
            problems.append("RUPALI_S3_ENDPOINT_URL must be https:// unless it is loopback or RUPALI_S3_ALLOW_HTTP "
                            f"says it is on a private network (got {self.s3_endpoint_url})")
        for field in ("operator_name", "operator_address", "operator_email"):
            if field not in self.model_fields_set:
                problems.append(f"RUPALI_{field.upper()} must be set to your own details")
        if not self.smtp_host:
            problems.append("RUPALI_SMTP_HOST must be set (without it mail only goes to the log)")
        secret = self.storage_secret.get_secret_value() if self.storage_secret else None
        if secret is not None and len(secret) < 32:
            problems.append("RUPALI_STORAGE_SECRET must be at least 32 characters")
        if self.redis_url is not None and secret is None:
            # Redis means several instances: a secret made per data folder would differ between them, so a cookie
            # signed by one would be refused by the next, and rate-limit keys would not match.
            problems.append("RUPALI_STORAGE_SECRET must be set when RUPALI_REDIS_URL is (every instance needs the "
                            "same one)")
        return problems

    # --- derived values ----------------------------------------------------------------------------------------
    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def shared_queue(self) -> bool:
        """Whether generations are claimed from the database by every instance (PostgreSQL) rather than queued in
        this process (SQLite, which only one process uses)."""
        return make_url(self.effective_database_url).get_backend_name() == "postgresql"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'rupali.db').resolve()}"

    @property
    def effective_media_dir(self) -> Path:
        return (self.media_dir or self.data_dir / "media").resolve()

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_metadata_url and self.oidc_client_id and self.oidc_client_secret)

    @property
    def mail_to_log(self) -> bool:
        return not self.smtp_host

    @property
    def billing_enabled(self) -> bool:
        """Whether generations cost credits (``credits`` and ``creem`` modes)."""
        return self.billing != "off"

    @property
    def creem_enabled(self) -> bool:
        """Whether credit packs are sold through Creem (``creem`` mode)."""
        return self.billing == "creem"

    @property
    def packs(self) -> list[CreditPack]:
        """The configured credit packs (empty unless packs are set)."""
        return parsed_credit_packs(self.credit_packs)

    @property
    def analytics_enabled(self) -> bool:
        return bool(self.umami_website_id and self.umami_script_url)


def served_url(host: str, port: int) -> str:
    """The address a browser on this machine reaches a server listening on ``host:port`` at."""
    if host in {"", "0.0.0.0", "::", "[::]"}:  # noqa: S104  (every interface: loopback answers too)
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def parsed_extra_subprocessors(raw: str) -> list[dict[str, str]]:
    """Parse and check ``RUPALI_EXTRA_SUBPROCESSORS``."""
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg})") from exc
    required = ("name", "purpose", "location", "transfer")
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and all(isinstance(item.get(key), str) and item[key] for key in required)
        for item in items
    ):
        raise ValueError("must be a JSON list of objects with name, purpose, location and transfer")
    return items


@dataclass(frozen=True)
class CreditPack:
    """A credit pack for sale: Creem's product, the credits it grants, and its price in minor units."""

    key: str
    product_id: str
    credits: int
    price_cents: int
    currency: str
    label: str


_PACK_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def parsed_credit_packs(raw: str) -> list[CreditPack]:
    """Parse ``RUPALI_CREDIT_PACKS`` (a JSON list); ValueError naming the problem."""
    if not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg})") from None
    if not isinstance(items, list):
        raise ValueError("must be a JSON list of packs")
    packs: list[CreditPack] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"pack {index} is not an object")
        try:
            pack = CreditPack(key=str(item["key"]), product_id=str(item["product_id"]), credits=item["credits"],
                              price_cents=item["price_cents"], currency=str(item["currency"]).upper(),
                              label=str(item.get("label") or item["key"]))
        except KeyError as exc:
            raise ValueError(f"pack {index} lacks {exc.args[0]!r}") from None
        if not _PACK_KEY.fullmatch(pack.key):
            raise ValueError(f"pack {index}: key must be lowercase letters, digits, - or _")
        if not pack.product_id.strip() or len(pack.product_id) > 120:
            raise ValueError(f"pack {pack.key!r}: product_id is empty or too long")
        for name in ("credits", "price_cents"):
            value = getattr(pack, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000_000:
                raise ValueError(f"pack {pack.key!r}: {name} must be a whole number from 1 to 100,000,000")
        if not re.fullmatch(r"[A-Z]{3}", pack.currency):
            raise ValueError(f"pack {pack.key!r}: currency must be a three-letter code such as EUR")
        if not 1 <= len(pack.label) <= 60:
            raise ValueError(f"pack {pack.key!r}: label must be 1 to 60 characters")
        if any(other.key == pack.key for other in packs):
            raise ValueError(f"names pack {pack.key!r} twice")
        packs.append(pack)
    return packs


PRICE_MAX = 100_000  # credits per image: far above any sensible price, low enough to catch a typo of digits


def _credits(text: str, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{what}: {text.strip()!r} is not a whole number of credits") from None
    if not 0 <= value <= PRICE_MAX:
        raise ValueError(f"{what}: credits must be between 0 and {PRICE_MAX}")
    return value


def parsed_size_tiers(raw: str) -> list[tuple[int | None, int]]:
    """Parse ``RUPALI_CREDITS_SIZE_TIERS`` into ``(most pixels or None for any, credits)``, smallest first."""
    tiers: list[tuple[int | None, int]] = []
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        raise ValueError("must list at least `*=credits`")
    for index, part in enumerate(parts):
        size, equals, price = part.partition("=")
        size = size.strip().lower()
        if not equals:
            raise ValueError(f"{part!r} is not `WxH=credits`")
        if size == "*":
            if index != len(parts) - 1:
                raise ValueError("`*=credits` must come last")
            tiers.append((None, _credits(price, part)))
            continue
        width, times, height = size.partition("x")
        if not (times and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
            raise ValueError(f"{part!r} is not `WxH=credits`")
        pixels = int(width) * int(height)
        smaller = tiers[-1][0] if tiers else None
        if smaller is not None and pixels <= smaller:
            raise ValueError("sizes must grow from one tier to the next")
        tiers.append((pixels, _credits(price, part)))
    if tiers[-1][0] is not None:
        raise ValueError("must end with `*=credits` for images larger than the last size")
    return tiers


def parsed_model_prices(raw: str, tiers: int) -> dict[str, tuple[int, ...]]:
    """Parse ``RUPALI_CREDITS_MODEL_PRICES`` into ``model key -> credits per tier`` (one value = every tier)."""
    prices: dict[str, tuple[int, ...]] = {}
    for part in (piece.strip() for piece in raw.split(",")):
        if not part:
            continue
        key, equals, values = part.rpartition("=")
        key = key.strip()
        if not equals or ":" not in key:
            raise ValueError(f"{part!r} is not `provider:model=credits`")
        if key in prices:
            raise ValueError(f"names {key!r} twice")
        found = tuple(_credits(value, part) for value in values.split("/"))
        if len(found) not in {1, tiers}:
            raise ValueError(f"{part!r} gives {len(found)} prices; give one, or one per size tier ({tiers})")
        prices[key] = found
    return prices


@lru_cache
def get_settings() -> Settings:
    """Load settings once per process; raise :class:`ConfigError` with one readable line when invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between runs)."""
    get_settings.cache_clear()


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's report into one line naming the environment variable."""
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a whole-model check, e.g. the production refusal
            return message
        name = str(error["loc"][0])
        parts.append(f"{name if name.isupper() else 'RUPALI_' + name.upper()} {message}")
    return "invalid configuration: " + "; ".join(parts)


def ensure_data_dir(settings: Settings) -> Path:
    """Create the data directory (and media folder) and prove it is writable."""
    data_dir = settings.data_dir.resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        settings.effective_media_dir.mkdir(parents=True, exist_ok=True)
        # Unique per call: two threads creating their first engine at once must not remove each other's probe.
        probe = data_dir / f".write-probe-{os.getpid()}-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"data directory {data_dir} is not writable ({exc.strerror or exc})") from None
    return data_dir


def storage_secret(settings: Settings) -> str:
    """Return the cookie-signing secret: configured, or generated once and kept in the data directory."""
    if settings.storage_secret is not None:
        return settings.storage_secret.get_secret_value()
    path = ensure_data_dir(settings) / "storage_secret"
    if not path.exists():
        # O_EXCL: two processes starting at once cannot end up with different secrets.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ConfigError(f"storage secret in {path} is too short; delete the file to generate a new one")
    return secret


def masked(settings: Settings) -> dict[str, str]:
    """Effective settings for display, with secrets and database passwords masked."""
    shown: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            text = "********" if value.get_secret_value() else ""
        elif name == "database_url":
            text = make_url(settings.effective_database_url).render_as_string(hide_password=True)
        elif value is None:
            text = ""
        else:
            text = str(value)
        shown[name] = text
    shown["media_dir"] = str(settings.effective_media_dir)
    return shown


def _loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost`` or a loopback address)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
