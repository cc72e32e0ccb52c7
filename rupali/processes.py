"""Whether a process of this host is gone: lets work a killed process left behind be taken up without waiting."""

from __future__ import annotations

import os
import re
import socket


def host_name() -> str:
    """This host's name, short enough to sit in a token or a file name, and safe in both (letters, digits, dots and
    dashes; anything else becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()[:40])


def gone(pid: int) -> bool:
    """True only when no process ``pid`` exists here (signal 0 checks without signalling). A process we may not
    signal, or a number that is no process id, counts as alive: the caller falls back to waiting."""
    if pid <= 0:
        return False  # 0 and below name process groups, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False
