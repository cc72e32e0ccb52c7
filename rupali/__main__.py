"""``python -m rupali`` is the same as the ``rupali`` command."""

import sys

from rupali.cli import main

sys.exit(main())
