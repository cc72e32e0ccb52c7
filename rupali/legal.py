"""The legal documents, rendered from the configuration the code enforces.

Tables (retention, sub-processors, where data lives) are built from :mod:`rupali.policy` and the personal-data
inventory, never typed by hand, so a page cannot promise what the code does not do. A document's version is
its text version plus a fingerprint of the rendered content: change a retention setting and the version
changes with it, and its effective date is the day this installation first served it
(:mod:`rupali.services.legal`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from rupali import cookies, provenance
from rupali.config import Settings
from rupali.policy import EXPORT_DAYS, RetentionKey, retention_rules, subprocessors
from rupali.privacy import inventory


@dataclass(frozen=True)
class Section:
    """One numbered section: a title and a Markdown body."""

    title: str
    body: str


@dataclass(frozen=True)
class Document:
    """A legal page as rendered for one configuration."""

    slug: str
    title: str
    text_version: str
    sections: tuple[Section, ...]

    @property
    def version(self) -> str:
        """Text version plus a content fingerprint, e.g. ``1.0-3f9a2c1``."""
        digest = hashlib.sha256()
        for section in self.sections:
            digest.update(section.title.encode() + b"\0" + section.body.encode() + b"\0")
        return f"{self.text_version}-{digest.hexdigest()[:7]}"


SLUGS = ("privacy", "cookies", "terms", "subprocessors")


def document(slug: str, settings: Settings) -> Document:
    """The document called ``slug`` (one of :data:`SLUGS`)."""
    builders: dict[str, Callable[[Settings], Document]] = {
        "privacy": privacy_policy, "cookies": cookie_policy, "terms": terms, "subprocessors": subprocessor_list,
    }
    return builders[slug](settings)


# --- tables --------------------------------------------------------------------------------------------------------

def retention_table(settings: Settings) -> str:
    """The retention table as Markdown, from the rules the scheduler enforces.

    The transaction rule is enforced in every billing mode, but only Creem mode makes transaction records: the other
    modes say that none are made here rather than suggest purchases.
    """
    rows = [(rule.data_type, rule.describe(), _retention_reason(settings, rule.key, rule.reason))
            for rule in retention_rules(settings).values()]
    return _table(("Data type", "Retention period", "Reason"), rows)


def _retention_reason(settings: Settings, key: RetentionKey, reason: str) -> str:
    if key is not RetentionKey.TRANSACTIONS or settings.creem_enabled:
        return reason
    if settings.billing_enabled:
        return f"{reason} (this installation makes none: credits are not sold here)"
    return f"{reason} (this installation makes none: generating images here is free)"


def subprocessor_table(settings: Settings) -> str:
    """The sub-processor table as Markdown, or a plain sentence when there are none."""
    active = subprocessors(settings)
    if not active:
        return ("This installation currently shares personal data with **no sub-processors**: everything runs on "
                "the operator's own server.")
    rows = [(p.name, p.purpose, p.data, p.location, p.transfer) for p in active]
    table = _table(("Processor", "Purpose", "Data it receives", "Location", "Transfer mechanism"), rows)
    return table + "\n\nSCCs = Standard Contractual Clauses · DPF = EU-US Data Privacy Framework"


def data_inventory_table(settings: Settings) -> str:
    """Where personal data lives, from the personal-data inventory declared next to each model."""
    rules = retention_rules(settings)
    erasure_words = {
        inventory.Erasure.DELETE: "Deleted",
        inventory.Erasure.ANONYMIZE: "Kept without the link to you",
        inventory.Erasure.KEEP: "Kept (identifies nobody)",
    }
    rows = [
        (_humanise(entry.table), holds(settings, entry), "Yes" if entry.declaration.export else "No",
         erasure_words[entry.declaration.erasure], rules[entry.declaration.retention].describe())
        for entry in inventory.entries() if applies(settings, entry)
    ]
    return _table(("Record", "What it holds", "In your export", "When you ask for erasure", "Kept"), rows)


# What the credit account holds where nothing is sold (its VAT number is given only for Creem's receipts).
_HOLDS_WITHOUT_SALES = {"credit_account": "Your credit balance, daily allowance and balance-alert state"}


def holds(settings: Settings, entry: inventory.InventoryEntry) -> str:
    """What the record holds, as this billing mode can fill it."""
    if settings.creem_enabled:
        return entry.declaration.holds
    return _HOLDS_WITHOUT_SALES.get(entry.table, entry.declaration.holds)


def applies(settings: Settings, entry: inventory.InventoryEntry) -> bool:
    """Whether a record can hold anything in this billing mode: credit records only when generations cost credits,
    transaction records (orders, purchases) only when credits are sold through Creem."""
    if entry.model.__module__ != "rupali.models.billing":
        return True
    if entry.declaration.retention is RetentionKey.TRANSACTIONS:
        return settings.creem_enabled
    return settings.billing_enabled


# --- documents -----------------------------------------------------------------------------------------------------

def privacy_policy(settings: Settings) -> Document:
    s = settings
    rules = retention_rules(s)
    consent_days = rules[RetentionKey.COOKIE_CONSENT].describe()
    logs = rules[RetentionKey.TECHNICAL_LOGS].describe()
    providers = _ai_provider_sentence(s)
    analytics = (
        "We measure page views with Umami, a cookie-less analytics service, with Do-Not-Track respected; you can "
        "switch it off at any time under *Cookie settings* at the foot of every page or in your privacy center, "
        "and then our pages carry no statistics script for you at all." if s.analytics_enabled
        else "This installation runs **no analytics**."
    )
    grace = s.retention_account_grace_days
    sections = (
        Section("Who we are", (
            f"**{s.operator_name}** operates this service and is the *data controller* for your personal data.\n\n"
            f"Address: {s.operator_address}  \nE-mail: [{s.operator_email}](mailto:{s.operator_email})\n\n"
            "This policy explains what we collect, why, how long we keep it and the rights you have. It follows "
            "the EU General Data Protection Regulation (GDPR)."
        )),
        Section("What we collect", (
            "**Account and identity:** your e-mail address, full name, an internal user id, your sign-in "
            "sessions and, if you upload one, a profile picture.\n\n"
            "**Generation data:** the prompts and negative prompts you enter, the parameters you choose (model, "
            "size, steps, guidance, seed), the images you generate with their metadata (model and version, "
            "generation time, NSFW score), your generation history and your favourites.\n\n"
            + _credits_collected(s) +
            _technical_collected(s) + f" {analytics}\n\n"
            "**Communications:** messages you send us and your e-mail preferences.\n\n"
            "Every record that holds personal data is listed below, with what happens to it when you ask for "
            "your data or for its erasure. This table is generated from the system itself:\n\n"
            + data_inventory_table(s)
        )),
        Section("Why we use it and on what legal basis", _table(("Purpose", "Legal basis (GDPR Art. 6)"), [
            ("Creating your account, signing you in, generating and storing your images, your gallery"
             + (" and credit balance" if s.billing_enabled else ""), "Performance of a contract"),
            *([("Selling credit packs through Creem, receipts, refunds and chargebacks", "Performance of a contract"),
               ("Invoices, VAT and keeping transaction records", "Legal obligation")] if s.creem_enabled else []),
            ("Security, fraud and abuse prevention, content-safety scoring, technical logs",
             "Legitimate interest"),
            ("Cookie-less usage statistics", "Legitimate interest (you can object at any time)"),
            ("Product news and marketing e-mails", "Consent (opt-in, withdraw at any time)"),
        ])),
        *_credits_sections(s),
        Section("AI providers", (
            f"{providers} An AI provider receives your prompt, parameters and any image you upload, solely to "
            "produce the output you asked for. Depending on the model, a provider may process it in the EU or "
            "elsewhere (see *International transfers*). Providers may keep processing logs for performance, "
            "safety and abuse prevention under their own retention rules.\n\n"
            "We score every generated image for NSFW content to detect prohibited material (legitimate interest "
            "in platform safety); the score is stored with the image."
        )),
        Section("AI-generated images are marked", ai_marking(s)),
        Section("We do not train on your content", (
            f"{s.operator_name} does **not** use your prompts or generated images to train AI models, and we do "
            "not share your content with anyone for AI training without your explicit consent. Your gallery is "
            "private to you."
        )),
        Section("Your rights", (
            "You have the right to **access** your data, to **rectification**, to **erasure**, to **data "
            "portability** (a machine-readable export), to **object** to processing based on legitimate interest, "
            "to **withdraw consent** at any time and to **lodge a complaint** with a supervisory authority.\n\n"
            "Most rights are self-service in your [privacy center](/privacy):\n\n"
            "- **Download your data:** one ZIP file with every record about you (JSON, and CSV for tables), every "
            "image you generated with its prompt and settings, and every image you uploaded, with a README that "
            f"explains each file. You can ask for one a day; it can be downloaded for {EXPORT_DAYS} days and is "
            "then deleted.\n"
            "- **Delete your account:** confirmed with your password (or, for single sign-on, by typing your e-mail "
            "address). Every session and API key stops working at once and queued generations are cancelled. "
            + (f"For **{grace} days** you can change your mind by signing in; then " if grace else "Then ")
            + "your account, images, uploads, prompts and all other records are deleted, and records the law makes "
            "us keep stay without the link to you.\n"
            "- **Delete prompts and images:** delete any generation (its prompt, settings, images and upload) from "
            "your history, or single images from your gallery.\n"
            "- **E-mail preferences:** product news and marketing mails are off unless you switch them on; every "
            "such mail has a one-click unsubscribe link that works without signing in. Mails about your account "
            "and its security are always sent.\n\n"
            f"You can also write to [{s.operator_email}](mailto:{s.operator_email}). Every request (including "
            "those made in the privacy center) is logged with the date it arrived and the date it must be answered "
            f"by; we answer within **{s.gdpr_response_days} days**, and you can follow yours under *My requests*."
            "\n\n"
            f"To complain, contact [{s.supervisory_authority_name}]({s.supervisory_authority_url}) — in the EU, "
            "the authority of the country where you live."
        )),
        Section("Age requirement", (
            f"You must be at least **{s.minimum_age} years old** to use this service; sign-up asks you to confirm "
            f"it. We do not knowingly collect data from anyone under {s.minimum_age}; if we learn that we have, "
            "we delete it immediately: an administrator erases the account at once, without the grace period."
        )),
        Section("How long we keep data", (
            retention_table(s) + "\n\n"
            "Expired data is removed by a scheduled job inside the service that runs every few hours: records "
            "past their period, images past their expiry with their files, uploaded images no generation uses any "
            "more, downloads past their week, and accounts at the end of their grace period. "
            + ("Transaction records are kept for the period tax law requires even after account deletion, without "
               "the link to your account. " if s.creem_enabled else "")
            + "Your privacy center shows, for each kind of data, when it will be deleted."
        )),
        Section("Sub-processors", subprocessor_table(s) + "\n\nThe current list is always at "
                "[Sub-processors](/legal/subprocessors)."),
        Section("International transfers", (
            "Where a sub-processor or AI provider processes data outside the EU/EEA, the transfer is protected by "
            "Standard Contractual Clauses approved by the European Commission, the EU-US Data Privacy Framework "
            "for certified US companies, or an adequacy decision. Every sub-processor is bound by a data "
            "processing agreement."
        )),
        Section("Security", (
            ("Traffic is encrypted in transit (HTTPS). " if s.public_url.startswith("https://") else "")
            + "Passwords are stored only as Argon2id hashes. Cookies are signed or random, HttpOnly and SameSite"
            + (" and sent over HTTPS only" if all(cookie.secure for cookie in cookies.declared(s)) else "")
            + ". Every page, image and file is checked against your account on the server, so nobody else can "
            "reach your gallery."
        )),
        Section("Changes to this policy", (
            "When this policy or the Terms change, their version changes. The next time you use the service "
            "after a change you see a notice with the date of the change, and you accept the new version before "
            "you go on; your acceptance is recorded. The version and effective date are shown at the top of this "
            "page."
        )),
        Section("Contact", (
            f"{s.operator_name}, {s.operator_address} — [{s.operator_email}](mailto:{s.operator_email}). "
            f"Technical logs are kept {logs.lower()}; cookie choices {consent_days.lower()}."
        )),
    )
    return Document("privacy", "Privacy Policy", "1.0", sections)


def ai_marking(settings: Settings) -> str:
    """How generated images are marked as machine-made (EU AI Act Art. 50(2)), from the signing configuration."""
    signing = provenance.signing(settings)
    who = f"**{signing.signer}**" + (f" ({signing.organisation})" if signing.organisation else "")
    if signing.self_made:
        who += (": a certificate this installation made for itself under its own local authority. It proves that a "
                "file is unchanged since this installation signed it; it is not a publicly trusted identity")
    timing = (f"Each signature carries a time stamp from the time-stamping authority at {signing.tsa_url}."
              if signing.tsa_url else
              "Signatures carry no independent time stamp, so they can be checked while the signing certificate is "
              "valid.")
    return (
        "Every image generated here is marked as machine-made, in the file itself, as Article 50(2) of the EU AI "
        "Act requires (images stored before this installation began to sign them are signed by a background "
        "job):\n\n"
        "- **Content Credentials (C2PA):** a signed manifest states that the image is AI-generated (IPTC digital "
        "source type *trained algorithmic media*; images of the offline sketch generator, which uses no AI model: "
        "*algorithmic media*), which tool made it (Rupali and its version, the AI provider and model) and when. "
        "The signature covers the pixels and the file's text, so any later change shows.\n"
        "- **IPTC XMP:** the same digital source type, for tools that read only XMP.\n\n"
        f"Images are signed by {who}. {timing}\n\n"
        "The marks never contain your name, e-mail address or account id. Your prompt, settings and seed are in a "
        "PNG file (its text and its manifest) only when your downloads include them, as you choose on your account "
        "page; JPEG and WebP files never carry the prompt. Anyone can check a file at "
        "[Check an image](/verify), without an account; the file is not stored."
    )


def cookie_policy(settings: Settings) -> Document:
    s = settings
    lifetime = retention_rules(s)[RetentionKey.COOKIE_CONSENT].describe()
    declared = cookies.declared(s)
    table = _table(("Name", "Purpose", "Type", "Flags", "Lifetime"), [
        (f"`{cookie.name}`", cookie.purpose, "Essential", cookie.describe_flags(), cookie.describe_lifetime())
        for cookie in declared
    ])
    analytics = (
        "Usage statistics come from **Umami**, which sets **no cookies** and stores no identifier in your browser. "
        "The tracker honours your browser's Do-Not-Track setting. You can switch analytics off at any time under "
        "*Cookie settings* at the foot of every page (signed in: in your privacy center). We remember that choice "
        "with your cookie acknowledgement (signed in: with your account), set `umami.disabled` in your browser's "
        "local storage, and leave the tracker out of our pages altogether."
        if s.analytics_enabled else "This installation runs **no analytics** of any kind."
    )
    sections = (
        Section("Essential cookies only", (
            f"We use {cookie_count(s)}. They are needed for the service to work (keeping you signed in and "
            "remembering your cookie choice), so they need no consent under the ePrivacy rules. "
            "We use no advertising or tracking cookies, and no cookies from anyone else.\n\n" + table
        )),
        Section("Analytics", analytics),
        Section("Your cookie choice", (
            "The first time you visit, a notice explains this. When you acknowledge it we record an anonymous "
            f"visitor id, this policy's version and the time; the record is kept for {lifetime.lower()}, after "
            "which the notice appears again. A new version of this policy also brings the notice back."
        )),
        Section("Contact", f"Questions: [{s.operator_email}](mailto:{s.operator_email})."),
    )
    return Document("cookies", "Cookie Policy", "1.0", sections)


def terms(settings: Settings) -> Document:
    s = settings
    sections = (
        Section("Agreement", (
            f"These terms govern your use of the image studio operated by **{s.operator_name}**, "
            f"{s.operator_address}. By creating an account you accept them and our "
            "[Privacy Policy](/legal/privacy)."
        )),
        Section("Eligibility", f"You must be at least **{s.minimum_age} years old** to create an account."),
        Section("Your account", (
            "Keep your credentials safe; you are responsible for activity in your account. You can end your "
            "sessions and delete your account yourself at any time."
        )),
        Section("Acceptable use", (
            "Do not generate, upload or share content that is illegal, sexualises minors, infringes others' "
            "rights, harasses people, or depicts real people without their consent. Prompts can be refused and "
            "images can be blurred or withheld by automated content-safety checks. We may suspend accounts that "
            "break these rules and report illegal content to the authorities where the law requires it."
        )),
        Section("Your content", (
            "You keep the rights you have in your prompts and uploads, and we claim no ownership of the images "
            "you generate. We store them only to provide the service and never use them to train AI models. "
            "Whether generated images can be protected by copyright depends on the law where you are."
        )),
        _terms_credits(s),
        Section("Availability and liability", (
            "The service is provided as is. We work to keep it available and your data safe but do not guarantee "
            "uninterrupted service. Nothing in these terms limits liability that cannot be limited by law."
        )),
        Section("Changes and termination", (
            "When these terms change, you see a notice with the date of the change the next time you use the "
            "service, and you accept the new version before you go on (or download your data and leave). You may "
            "stop using the service and delete your account at any time, from your privacy center."
        )),
        Section("Contact", f"[{s.operator_email}](mailto:{s.operator_email})"),
    )
    return Document("terms", "Terms of Service", "1.0", sections)


def subprocessor_list(settings: Settings) -> Document:
    sections = (
        Section("Who processes data for us", (
            "These third parties process personal data on our behalf under data processing agreements. The list "
            "is generated from this installation's configuration, so it always matches what the service really "
            "connects to.\n\n" + subprocessor_table(settings)
        )),
        Section("AI providers", _ai_provider_sentence(settings)),
    )
    return Document("subprocessors", "Sub-processors", "1.0", sections)


# --- credits and payments, by billing mode ------------------------------------------------------------------------
# Off: nothing about money anywhere. Credits: credits and free allowances, no sales and no payment processor.
# Creem: credit packs sold through Creem (merchant of record), what that collects and how long it is kept.

def _free_credits(settings: Settings) -> str:
    """"You receive 50 free credits once, and each day (UTC) your balance is topped up to 10." (or less)"""
    bonus, allowance = settings.credits_signup_bonus, settings.credits_daily_allowance
    parts = []
    if bonus:
        parts.append(f"{bonus} free credit{'s' if bonus != 1 else ''} once, when you first use the studio")
    if allowance:
        parts.append(f"each day (UTC) your balance is topped up to {allowance} credits, without rollover (unused "
                     "free credits do not pile up)")
    return ("You receive " + ", and ".join(parts) + ". ") if parts else ""


def _credits_collected(settings: Settings) -> str:
    """The "What we collect" paragraph about credits and payments; empty with billing off."""
    if not settings.billing_enabled:
        return ""
    credits = ("**Credits:** your credit balance and its history: free credits you received, grants from an "
               "administrator with their reason, and the credits each generation held and spent.")
    if not settings.creem_enabled:
        return credits + " Credits are not sold on this installation.\n\n"
    return (credits + "\n\n**Payment and billing:** when you buy credits (see *Credits and payments*): transaction "
            "ids and order details, purchase amounts and dates, your country (for VAT) and, if you give one, your "
            "VAT number. Card details are entered at Creem, our payment processor, and never reach us.\n\n")


def _credits_sections(settings: Settings) -> list[Section]:
    """The privacy policy's section on credits (credits mode) or on credits and payments (Creem mode)."""
    s = settings
    if not s.billing_enabled:
        return []
    how = ("Generations cost credits: the studio shows the price and your balance before you generate. The credits "
           "are held when a generation is accepted; only the images delivered are charged, and a generation that "
           "fails, is blocked or is cancelled costs nothing. " + _free_credits(s))
    if not s.creem_enabled:
        return [Section("Credits", (
            how + "An administrator may grant credits. Credits are not sold on this installation and no payment "
            "processor is involved. Your balance and its history are kept with your account, are in your data "
            "download, and are deleted with your account."
        ))]
    years = retention_rules(s)[RetentionKey.TRANSACTIONS].describe()
    return [Section("Credits and payments", (
        how + "You can buy more in credit packs.\n\n"
        "Credit packs are sold through **Creem** ([creem.io](https://creem.io), Estonia, EU), our payment processor "
        "and *merchant of record*: Creem processes the payment and calculates and collects VAT. **Card details are "
        "entered at Creem only and never reach us.**\n\n"
        "For each purchase we keep: the transaction ids and order details (pack, credits, price and currency), the "
        "amounts and dates, your country code (for VAT) and, if you give one, your VAT number (for business "
        "customers), and the e-mail address Creem sent the receipt to. These transaction records are kept for "
        f"**{years.lower()}**, as tax law requires, also after your account is deleted, then without the link to "
        "you.\n\n"
        "A **refund or chargeback reverses the credits** of that purchase: they are taken back from your balance, "
        "which may then go below zero; new images can be made once it is back above zero."
    ))]


def _terms_credits(settings: Settings) -> Section:
    s = settings
    if not s.billing_enabled:
        return Section("Free of charge", "Generating images on this installation is free.")
    how = ("Generating images costs credits. The studio shows the price and your balance before you generate, and "
           "a request your balance does not cover is refused. Only delivered images are charged; a generation that "
           "fails, is blocked or is cancelled costs nothing. " + _free_credits(s))
    if not s.creem_enabled:
        return Section("Credits", how + "Credits are not sold here, have no cash value, cannot be transferred and "
                                        "end with your account.")
    return Section("Credits and payment", (
        how + "Credit packs are sold by **Creem** as merchant of record, under its terms for the purchase; Creem "
        "processes the payment and VAT. Credits cannot be exchanged for money or transferred, and any credits left "
        "end with your account. A refund or chargeback takes that purchase's credits back from your balance; "
        "while a chargeback (payment dispute) is open, buying more credits is paused for the account."
    ))


# --- helpers -------------------------------------------------------------------------------------------------------

def cookie_count(settings: Settings) -> str:
    """"two essential cookies": what the notice and the policy say, counted from the declaration."""
    count = len(cookies.declared(settings))
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    return f"{words.get(count, str(count))} essential cookie{'s' if count != 1 else ''}"


def _ai_provider_sentence(settings: Settings) -> str:
    parts = []
    if settings.offline_generator:
        parts.append("Images can be drawn by the built-in **offline sketch generator**, which runs on this server, is "
                     "not AI, and sends nothing to anyone.")
    if settings.runware_api_key:
        parts.append("AI images are generated by **Runware** (runware.ai), which receives your prompt, parameters and "
                     "any image you upload over an encrypted connection.")
    if settings.a1111_url:
        parts.append("AI images are also generated on the operator's own image server (Stable Diffusion), which "
                     "does not share your request with any third party.")
    return " ".join(parts) or "This installation has no image generator configured."


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _humanise(table: str) -> str:
    return table.replace("_", " ").capitalize()


def _technical_collected(s: Settings) -> str:
    """What the technical log (``RUPALI_TECHNICAL_LOG``) and the sign-in records hold."""
    if not s.technical_log:
        return ("**Technical data:** IP address, browser and device summary (from the user agent) and sign-in "
                "times for your security, plus error reports.")
    return ("**Technical data:** for every page you open and every request your browser or API key makes: the "
            "time, which page or address pattern it was (never what you typed into it, never search words or "
            "links' secrets), the outcome and how long it took, your IP address and a browser, operating-system "
            "and device summary (from the user agent, which itself is not kept); your sign-in times; and for "
            "errors, their type and reference. This technical log serves security and debugging.")
