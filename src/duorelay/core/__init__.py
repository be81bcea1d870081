"""One connection, whatever its transport: the session (nursery, writer, outbox,
endings), its mailboxes, its limits, and the backplane interface handlers are
given (docs/architecture.md, "One connection")."""
