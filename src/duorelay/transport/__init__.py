"""The wire under a connection: what sits between the socket and a session."""
