"""``python -m bench ...`` is the same as ``walkie bench ...``."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
