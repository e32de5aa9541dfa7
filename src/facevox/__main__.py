"""``python -m facevox``: the same as the ``facevox`` command."""

import sys

from facevox.cli import main

sys.exit(main())
