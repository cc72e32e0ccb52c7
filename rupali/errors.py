"""References for unexpected errors: one short code a person can quote and the operator can find in the log.

Pages, actions and the API all report failures through :func:`reference_for`, so the codes look alike everywhere
and each traceback is logged once, under its code, on the ``rupali.errors`` logger. The technical log records the
exception's type and reference (never its message) on the request that failed, or as an error row of its own.
"""

from __future__ import annotations

import contextlib
import logging
import secrets

log = logging.getLogger("rupali.errors")
_ATTRIBUTE = "rupali_reference"  # set on an exception once it has been logged with its reference


def reference_for(exception: BaseException, where: str = "") -> str:
    """The exception's reference (six hex digits, e.g. ``3F9A1C``), logged with its traceback the first time.

    ``where`` says what failed (method and path); it must hold no query string, which may carry people's words.
    """
    reference = getattr(exception, _ATTRIBUTE, None)
    if reference is None:
        reference = secrets.token_hex(3).upper()
        log.error("error %s%s", reference, f" on {where}" if where else "", exc_info=exception)
        with contextlib.suppress(AttributeError):  # a few built-ins take no attributes; the log has it anyway
            setattr(exception, _ATTRIBUTE, reference)
        from rupali import techlog  # imported here: the technical log needs the models, errors must not

        techlog.record_error(type(exception).__name__, reference, where)
    return reference
