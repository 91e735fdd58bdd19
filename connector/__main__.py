"""``python -m connector``: the same as the ``connector`` command."""

import sys

from .cli import main

sys.exit(main())
