"""duorelay: a multiplayer relay server for browser and bot games, on Trio.

Run it with ``hypercorn duorelay.app:app --worker-class trio``; see README.md.
"""

__version__ = "0.1.0"
