"""``python -m connector``: the same as the ``connector`` command."""

import sys

from .cli.main import main

sys.exit(main())
