"""``python -m absurd_tui`` is the ``absurd-tui`` command."""

import sys

from .cli import main

sys.exit(main())
