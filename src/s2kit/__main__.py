"""``python -m s2kit``: the command line."""

from __future__ import annotations

import sys

from s2kit.cli import main

sys.exit(main())
