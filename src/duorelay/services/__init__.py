"""Front-ends that bind a wire protocol to the referee and the store.

- :mod:`~duorelay.services.santorini`: the Santorini tournament server over TCP
  (docs/santorini.md);
- :mod:`~duorelay.services.santorini_clients`: built-in Santorini players
  (bots) and the course's client harness.
- :mod:`~duorelay.services.santorini_web`: the Santorini observers: the page,
  its JSON API and its live websocket feeds;
- :mod:`~duorelay.services.santorini_beside`: the Santorini service inside
  the web server.
- :mod:`~duorelay.services.referee_store`: the one store of the web server
  (migrated at start, closed at shutdown) and the accounts, shared by the
  turn-based services and the Santorini observers.
"""
