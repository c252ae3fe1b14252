"""``python -m trioapi module:app --bind HOST:PORT``."""

import sys

from ._server.cli import main

sys.exit(main())
