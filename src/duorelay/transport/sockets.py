"""Socket options of the listening sockets: ``TCP_USER_TIMEOUT`` (Linux, ``tcp(7)``).

Hypercorn's trio worker writes each frame inside a shielded cancel scope, so a
send to a client that stopped acknowledging blocks until the kernel gives up,
and no ``move_on_after`` around it fires. ``TCP_USER_TIMEOUT`` makes the kernel
give up after that many seconds; accepted sockets inherit it from the
listening socket.
"""

from __future__ import annotations

import os
import socket
import stat


def set_tcp_user_timeout(sock: socket.socket, seconds: float) -> bool:
    """Set ``TCP_USER_TIMEOUT`` (Linux, ``tcp(7)``) on a TCP socket; False if unsupported.

    ``seconds`` of 0 leaves the socket as it is.
    """
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is None or seconds <= 0:
        return False
    sock.setsockopt(socket.IPPROTO_TCP, option, round(seconds * 1000))
    return True


def set_tcp_user_timeout_on_listeners(seconds: float) -> int:
    """Set ``TCP_USER_TIMEOUT`` on every listening TCP socket of this process.

    For ``hypercorn duorelay.app:app``, where Hypercorn creates the listening
    sockets and the app cannot reach them: the app calls this at start-up.
    Linux only (reads ``/proc/self/fd``); returns how many sockets were set.
    """
    if seconds <= 0 or not hasattr(socket, "TCP_USER_TIMEOUT"):
        return 0
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return 0
    count = 0
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            # A duplicate descriptor: options set on it apply to the socket.
            with socket.socket(fileno=os.dup(fd)) as sock:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if (
                    listening
                    and sock.type == socket.SOCK_STREAM
                    and sock.family in (socket.AF_INET, socket.AF_INET6)
                ):
                    count += set_tcp_user_timeout(sock, seconds)
        except OSError:
            continue  # closed meanwhile, or not ours to inspect
    return count
