"""Client-authoritative rooms: the room registry (two-seat rooms, host rooms) and
the Kamon and WMBP handlers that relay frames between their players
(docs/protocols.md sections 1 and 2). Never imports ``cluster/``."""
