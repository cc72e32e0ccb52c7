"""The texts of every e-mail Rupali sends, in plain text and HTML (every inserted value escaped)."""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str


def compose(subject: str, greeting: str, paragraphs: list[str], *, link: tuple[str, str] | None = None,
            footer: str = "") -> Mail:
    """Compose a mail from plain-text parts; the HTML version escapes every one of them."""
    text_parts = [greeting, *paragraphs]
    html_parts = [f"<p>{html.escape(greeting)}</p>", *(f"<p>{html.escape(p)}</p>" for p in paragraphs)]
    if link:
        label, url = link
        text_parts.append(f"{label}: {url}")
        html_parts.append(
            f'<p><a href="{html.escape(url, quote=True)}" style="display:inline-block;padding:10px 18px;'
            f'background:#6d28d9;color:#ffffff;border-radius:8px;text-decoration:none">{html.escape(label)}</a></p>'
            f'<p style="color:#55555f;font-size:13px">Or paste this address into your browser: '
            f"{html.escape(url)}</p>")
    if footer:
        text_parts.append(footer)
        html_parts.append(f'<p style="color:#55555f;font-size:13px">{html.escape(footer)}</p>')
    body = "".join(html_parts)
    return Mail(subject, "\n\n".join(text_parts) + "\n",
                f'<!doctype html><html><body style="font-family:system-ui,sans-serif;color:#17171c">{body}'
                "</body></html>")


_NOT_YOU = "If this was not you, you can ignore this message."


def verify_email(name: str, link: str, hours: int) -> Mail:
    return compose("Confirm your e-mail address", f"Hi {name},",
                 ["Welcome to Rupali. Please confirm your e-mail address to finish creating your account.",
                  f"The link works once and expires in {hours} hours."],
                 link=("Confirm my e-mail address", link), footer=_NOT_YOU)


def signup_with_existing_address(name: str, signin_link: str, reset_link: str) -> Mail:
    return compose("Someone tried to create an account with your address", f"Hi {name},",
                 ["Someone (maybe you) tried to create a Rupali account with this e-mail address, but you already "
                  "have one. Sign in instead, or reset your password if you have forgotten it.",
                  f"Reset your password: {reset_link}"],
                 link=("Sign in", signin_link), footer=_NOT_YOU)


def reset_password(name: str, link: str, minutes: int) -> Mail:
    return compose("Reset your password", f"Hi {name},",
                 ["We received a request to reset your Rupali password.",
                  f"The link works once and expires in {minutes} minutes. Resetting signs you out everywhere."],
                 link=("Choose a new password", link), footer=_NOT_YOU)


def password_changed(name: str, signin_link: str) -> Mail:
    return compose("Your password was changed", f"Hi {name},",
                 ["The password of your Rupali account was just changed.",
                  "If you did not do this, reset your password at once and review your sessions."],
                 link=("Sign in", signin_link))


def confirm_new_email(name: str, link: str, hours: int) -> Mail:
    return compose("Confirm your new e-mail address", f"Hi {name},",
                 ["Please confirm that this is the new e-mail address for your Rupali account.",
                  f"The link works once and expires in {hours} hours."],
                 link=("Confirm the new address", link), footer=_NOT_YOU)


def email_changed(name: str, new_email: str) -> Mail:
    return compose("Your e-mail address was changed", f"Hi {name},",
                 [f"The e-mail address of your Rupali account was changed to {new_email}. Mail now goes there.",
                  "If you did not do this, contact the operator of this service at once."])


def new_device_signin(name: str, device: str, ip: str, when: str, sessions_link: str) -> Mail:
    return compose("New sign-in to your account", f"Hi {name},",
                 [f"Your Rupali account was just signed in from a new device: {device}, IP address {ip}, at {when}.",
                  "If this was you, there is nothing to do. If not, end that session and change your password."],
                 link=("Review your sessions", sessions_link))


def newsletter(name: str, subject: str, body: str, unsubscribe_link: str, topic: str) -> Mail:
    paragraphs = [part.strip() for part in body.split("\n\n") if part.strip()]
    return compose(subject, f"Hi {name},", paragraphs,
                 footer=f"You receive this because you switched on {topic} in Rupali's privacy center. "
                        f"Unsubscribe with one click: {unsubscribe_link}")


def privacy_requests_due(name: str, overdue: list[str], due_soon: list[str], queue_link: str) -> Mail:
    """The daily work notice to an administrator: data-protection requests overdue or due within 7 days."""
    count = len(overdue) + len(due_soon)
    subject = f"{count} data-protection request{'s' if count != 1 else ''} to answer"
    paragraphs = ["These data-protection requests must be answered within the legal deadline. The queue shows "
                  "who asked and lets you close each one with its outcome."]
    # One paragraph per request: the HTML part has no line breaks inside a paragraph.
    if overdue:
        paragraphs += ["Overdue:", *(f"• {line}" for line in overdue)]
    if due_soon:
        paragraphs += ["Due within 7 days:", *(f"• {line}" for line in due_soon)]
    return compose(subject, f"Hi {name},", paragraphs, link=("Open the request queue", queue_link))


def deletion_scheduled(name: str, when: str, cancel_link: str, signin_link: str, *, by_operator: bool = False) -> Mail:
    asked = ("The operator of this service scheduled your Rupali account for deletion." if by_operator
             else "You asked us to delete your Rupali account.")
    return compose("Your account will be deleted", f"Hi {name},",
                 [f"{asked} It will be deleted on {when}, with your images, prompts, uploads and everything else "
                  "we hold about you.",
                  "Until then you can change your mind: follow the link below, or sign in and choose "
                  f"\"Cancel deletion\" ({signin_link}). The link works once, until the deletion.",
                  "Your sessions and API keys have already been ended, and queued images were cancelled."],
                 link=("Cancel the deletion", cancel_link),
                 footer="If you did not ask for this, cancel the deletion and change your password.")


def deletion_cancelled(name: str, signin_link: str) -> Mail:
    return compose("Your account will not be deleted", f"Hi {name},",
                 ["The deletion of your Rupali account was cancelled. Your account and your images stay as they were.",
                  "You can use it as before. API keys ended by the deletion request must be created again."],
                 link=("Sign in", signin_link))


def export_ready(name: str, privacy_link: str, until: str) -> Mail:
    return compose("Your data is ready to download", f"Hi {name},",
                 ["The copy of your Rupali data you asked for is ready: one ZIP file with every record about you, "
                  "your images with their prompts and settings, and your uploads, with a README that explains them.",
                  f"Download it from the privacy center while you are signed in. It is available until {until}, "
                  "then it is deleted."],
                 link=("Open the privacy center", privacy_link),
                 footer="If you did not ask for it, change your password and review your sessions and API keys.")


def image_removed(name: str, prompt: str, created: str, reason: str, operator_email: str) -> Mail:
    """To the owner of an image an administrator removed from the moderation queue: which image, and why."""
    return compose("An image of yours was removed", f"Hi {name},",
                 [f"The operator of this service removed one of your images: the one made on {created} from the "
                  f"prompt “{prompt}”.",
                  f"The reason: {reason}",
                  "The image and its thumbnail have been deleted. The rest of your gallery is as it was."],
                 footer=f"If you think this is a mistake, write to {operator_email}.")
