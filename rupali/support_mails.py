"""The texts of the support e-mails (the acknowledgement of a new ticket, an administrator's reply), plain text and
HTML.

Composed exactly like every other mail (:mod:`rupali.mail_templates`): every inserted value is escaped in the HTML.
A visitor's acknowledgement carries none of the words typed into the form, not even the name: anyone can type any
address, and the form must not become a way to mail someone else a text of one's choosing under our name.
"""

from __future__ import annotations

from rupali.mail_templates import Mail, compose  # compose: the one layout every Rupali mail shares

_NOT_YOU = "If you did not write to us, you can ignore this message."


def _greeting(name: str | None) -> str:
    return f"Hi {name}," if name else "Hello,"


def acknowledgement(name: str | None, subject: str | None, reference: str, link: str | None, form_link: str,
                    operator: str) -> Mail:
    """We received the message. ``name``, ``subject`` and ``link`` (to the person's ``/support``) are given for
    account holders only; a visitor's acknowledgement quotes nothing they typed."""
    paragraphs = [f"Thank you for writing to {operator} support. We received your message and will answer as soon "
                  "as we can."]
    if subject:
        paragraphs.append(f"Your request {reference}: {subject}")
    else:
        paragraphs.append(f"Your request is {reference}. Quote it if you write to us again.")
    if link:
        paragraphs.append("You can follow the conversation and write more on the support page.")
        return compose(f"We received your request {reference}", _greeting(name), paragraphs,
                       link=("Open your support requests", link), footer=_NOT_YOU)
    paragraphs.append(f"Our answer will come to this address by e-mail. To add something, use the form at "
                      f"{form_link} with this address and quote {reference}.")
    return compose(f"We received your request {reference}", _greeting(None), paragraphs, footer=_NOT_YOU)


def reply(name: str, subject: str, text: str, reference: str, link: str | None, form_link: str,
          operator: str) -> Mail:
    """An administrator's answer, in full. Account holders get a link to their ``/support``, where they can reply;
    visitors are told to write again through the form."""
    # One paragraph per line: the HTML version keeps the reply's line breaks (a paragraph would run them together).
    paragraphs = [f"We answered your request {reference} ({subject}):",
                  *(line for line in text.split("\n") if line.strip())]
    if link:
        paragraphs.append("You can read the whole conversation and reply on the support page.")
        return compose(f"Re: {subject} [{reference}]", _greeting(name), paragraphs,
                       link=("Open the conversation", link), footer=f"{operator} support")
    paragraphs.append(f"To write back, use the form at {form_link} with this address and quote {reference}.")
    return compose(f"Re: {subject} [{reference}]", _greeting(name), paragraphs, footer=f"{operator} support")
