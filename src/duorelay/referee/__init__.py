"""Server-authoritative play: the match task, tournaments, the event log.

For Santorini (docs/santorini.md):

- :mod:`~duorelay.referee.players`: a registered player as the referee sees
  it: a name, the outbox of its connection, and the route of its replies
  into the inbox of the match that asked;
- :mod:`~duorelay.referee.santorini`: one best-of-3 series, the match task;
- :mod:`~duorelay.referee.tournament`: the round robin, the misbehaviour
  policy and the results;
- :mod:`~duorelay.referee.record`: the event log in the store, then the observer;
- :mod:`~duorelay.referee.observer`: the spectators' hook.
- :mod:`~duorelay.referee.spectators`: the spectators hub, an observer that
  feeds watching connections without ever waiting for them.

For the turn-based services (UTTT, XO):

- :mod:`~duorelay.referee.matches`: the live matches: one task per match while
  it is watched, its bounded inbox, the event log written before anyone is told;
- :mod:`~duorelay.referee.accounts`: sign-up and log-in shared by every service
  (Argon2id in hashing threads, attempts rate-limited per address and name).

The referee owns no connection: the front-end (:mod:`duorelay.services`)
accepts connections, runs each as a :class:`~duorelay.core.session.Session`
and hands the referee its players.
"""
