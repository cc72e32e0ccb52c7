"""Fault injection for crash tests: pause the process at a named stage of storing media, so a test can kill it there.

``RUPALI_FAULT_PAUSE=<stage>`` names the stage; when the code reaches it, :func:`reached` writes the stage name to
the file named by ``RUPALI_FAULT_MARKER`` and blocks that thread forever. The test waits for the marker and sends
``kill -9``: the crash lands exactly at that point instead of wherever a race would put it. Unset (always, outside
tests), :func:`reached` is one comparison.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

# The stages of storing a finished generation, in order. They are the points where a crash leaves a different
# mix of intent, files and rows behind (see rupali.storage for the rule at each).
BEFORE_FILES = "store:before-files"  # the intent is recorded, no file written yet
IN_TEMPORARY = "store:in-temporary"  # the first file (an original) is in its ``.tmp-`` name, not yet renamed
AFTER_ORIGINAL = "store:after-original"  # the first original is in place, its thumbnail not yet
AFTER_THUMBNAIL = "store:after-thumbnail"  # every original and the first thumbnail are in place
BEFORE_COMMIT = "store:before-commit"  # every file is written and the rows are flushed, not committed
AFTER_COMMIT = "store:after-commit"  # the rows are committed, the intent not yet cleared
STAGES = (BEFORE_FILES, IN_TEMPORARY, AFTER_ORIGINAL, AFTER_THUMBNAIL, BEFORE_COMMIT, AFTER_COMMIT)

PAUSE_VARIABLE = "RUPALI_FAULT_PAUSE"
MARKER_VARIABLE = "RUPALI_FAULT_MARKER"

# Read once: the variable is set by the test that starts the process, never changed while it runs.
_pause_at = os.environ.get(PAUSE_VARIABLE) or None
if _pause_at is not None and _pause_at not in STAGES:
    raise ValueError(f"{PAUSE_VARIABLE}={_pause_at!r} names no stage (known: {', '.join(STAGES)})")


def reached(stage: str) -> None:
    """Mark that storing got to ``stage``; pauses forever when the environment asks for this stage."""
    if _pause_at is None or stage != _pause_at:
        return
    _pause(stage)


def _pause(stage: str) -> None:
    marker = os.environ.get(MARKER_VARIABLE)
    print(f"rupali: paused at fault stage {stage} (pid {os.getpid()})", file=sys.stderr, flush=True)
    if marker:
        Path(marker).write_text(f"{stage}\n{os.getpid()}\n")
    threading.Event().wait()  # until the test kills the process
