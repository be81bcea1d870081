"""``python -m duorelay``: run the relay; ``--help`` lists options and settings."""

import sys

from duorelay.cli import main

sys.exit(main())
