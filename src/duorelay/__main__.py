"""``python -m duorelay``: run the relay; ``--help`` lists options and settings."""

import sys

from duorelay.server import main

sys.exit(main())
