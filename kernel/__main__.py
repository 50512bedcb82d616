"""``python -m kernel`` is the same as the ``postloan`` command."""
import sys

from .cli import main

sys.exit(main())
