"""The load generator: one worker process of many picows connections on uvloop.

The harness (``Workers`` in ``bench/servers.py``) starts several of these workers as
separate processes (never in the server's process) and drives them in lock step over a
``multiprocessing`` pipe, one command at a time:

``connect``
    open websockets to the relay and send each one's join ``* ROOM_SEAT``
    (at most ``concurrency`` handshakes in flight per worker);
``handshake``
    make sure both seats of every room are joined, since the relay drops a
    frame whose other seat is empty: seat 1 sends the text ``ready`` (again in
    each round the harness starts, until it receives ``ok``); seat 0 answers
    every ``ready`` with ``ok``.
    A seat 0 that got ``ready`` and a seat 1 that got ``ok`` both know that
    the other seat is joined (the relay forwards a frame only between joined
    seats). Stray ``ready``/``ok`` frames that arrive later are ignored;
``pingpong`` / ``stream`` / ``fleet``
    run one scenario from a common start time (``time.monotonic``, which is
    the system-wide ``CLOCK_MONOTONIC`` on Linux, so send timestamps taken in
    one worker are comparable with receive times in another), then report
    counts, latencies (as raw ``array('q')`` bytes of nanoseconds) and every
    error seen;
``exit``
    leave (the process exit closes the sockets).

Measurement frames are binary; their first 8 bytes (pingpong and fleet: 16)
carry the sequence number (and the send time), so each receiver checks order
and completeness frame by frame. At the end of a stream or fleet run every
sender sends the text ``end:N`` (N = binary frames it sent); the receiver checks
that it received exactly N frames, in order, before that marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import resource
import struct
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

BINARY = WSMsgType.BINARY
TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE

monotonic_ns = time.monotonic_ns
HEADER = struct.Struct("<QQ")  # (send time ns, sequence number)
SEQ = struct.Struct("<Q")


def raise_nofile_limit() -> int:
    """Raise this process's open-file limit to its hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Conn(WSListener):  # type: ignore[misc]
    """One websocket: a seat of a room, with the state of every scenario."""

    def __init__(self, worker: Worker, room: str, seat: int) -> None:
        super().__init__()
        self.worker = worker
        self.room = room
        self.seat = seat
        self.transport: WSTransport | None = None
        self.on_binary = self._ignore
        self.peer_ready = False  # seat 0: got "ready"; seat 1: got "ok"
        self.closed_by_server: int | None = None
        self.expected = 0  # next sequence number expected from the peer
        self.received = 0  # binary frames received in this run
        self.sent = 0  # binary frames sent in this run
        self.end_seen = False
        self.acked = 0  # stream: frames the receiver has acknowledged
        self.paused = False
        self.resumed: asyncio.Event | None = None

    # picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.send(TEXT, f"* {self.room}_{self.seat}".encode())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == BINARY:
            if not frame.fin:
                self.worker.errors["fragmented frame"] += 1
            self.on_binary(frame)
        elif kind == TEXT:
            self._on_text(frame.get_payload_as_bytes())
        elif kind == CLOSE:
            code = frame.get_close_code()
            self.closed_by_server = int(code.value if hasattr(code, "value") else code)
            self.worker.errors[f"closed by server {self.closed_by_server}"] += 1
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.worker.leaving:
            self.worker.errors["disconnected"] += 1

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.resumed is not None:
            self.resumed.set()

    # frames

    def _on_text(self, text: bytes) -> None:
        worker = self.worker
        if text == b"ready":
            if self.seat == 0 and self.transport is not None:
                self.transport.send(TEXT, b"ok")
                if not self.peer_ready:
                    self.peer_ready = True
                    worker.handshake_progress()
        elif text == b"ok":
            if self.seat == 1 and not self.peer_ready:
                self.peer_ready = True
                worker.handshake_progress()
        elif text.startswith(b"ack:"):
            self.acked = int(text[4:])
            if self.resumed is not None:
                self.resumed.set()
        elif text.startswith(b"end:"):
            sent = int(text[4:])
            if sent != self.received:
                worker.errors["lost frames"] += max(0, sent - self.received)
                if self.received > sent:
                    worker.errors["extra frames"] += self.received - sent
            self.end_seen = True
            worker.end_progress()
        else:
            worker.errors["unexpected text frame"] += 1

    def _ignore(self, frame: WSFrame) -> None:
        self.worker.errors["binary frame outside a run"] += 1

    def send_end(self) -> None:
        if self.transport is not None:
            self.transport.send(TEXT, b"end:%d" % self.sent)


class Worker:
    """One load-generator process: its connections and the command loop."""

    def __init__(self, pipe: Connection, index: int) -> None:
        self.pipe = pipe
        self.index = index
        self.conns: list[Conn] = []
        self.errors: Counter[str] = Counter()
        self.leaving = False
        self._waiting_handshake = 0
        self._handshake_done: asyncio.Event | None = None
        self._waiting_end = 0
        self._end_done: asyncio.Event | None = None

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, self.pipe.recv)
            if command == "exit":
                self.leaving = True
                for conn in self.conns:
                    if conn.transport is not None:
                        conn.transport.disconnect(graceful=False)
                self.pipe.send({"ok": True})
                return
            cpu0 = time.process_time()
            try:
                result = await getattr(self, f"cmd_{command}")(**args)
            except Exception as error:  # reported to the harness, which fails the run
                result = {"fatal": f"{type(error).__name__}: {error}"}
            result["cpu_s"] = time.process_time() - cpu0
            result["errors"] = dict(self.errors)
            self.errors.clear()
            self.pipe.send(result)

    # connect and handshake

    async def cmd_connect(
        self, url: str, seats: list[tuple[str, int]], concurrency: int, limit: float
    ) -> dict[str, Any]:
        semaphore = asyncio.Semaphore(concurrency)
        failed = 0
        started = time.monotonic()

        async def one(room: str, seat: int) -> None:
            nonlocal failed
            async with semaphore:
                for attempt in range(3):
                    try:
                        _, conn = await asyncio.wait_for(
                            ws_connect(
                                lambda: Conn(self, room, seat),
                                url,
                                websocket_handshake_timeout=limit,
                                enable_auto_pong=True,
                            ),
                            limit,
                        )
                    except Exception as error:  # refused, reset, timed out, bad upgrade
                        self.errors[f"connect: {type(error).__name__}"] += 1
                        await asyncio.sleep(0.05 * (attempt + 1))
                        continue
                    self.conns.append(conn)
                    return
                failed += 1

        await asyncio.gather(*(one(room, seat) for room, seat in seats))
        return {
            "connected": len(seats) - failed,
            "failed": failed,
            "seconds": time.monotonic() - started,
        }

    def handshake_progress(self) -> None:
        self._waiting_handshake -= 1
        if self._waiting_handshake <= 0 and self._handshake_done is not None:
            self._handshake_done.set()

    async def cmd_handshake(self, wait: float, send: bool = True) -> dict[str, Any]:
        """Every seat 1 still waiting sends ``ready`` once (if ``send``); then wait up to ``wait``
        seconds for the answers. The harness calls this in rounds, after the
        server has gone quiet, so a resend only replaces a ``ready`` that was
        dropped (its seat 0 not joined yet), never floods a slow server."""
        started = time.monotonic()
        self._handshake_done = asyncio.Event()
        self._waiting_handshake = sum(not conn.peer_ready for conn in self.conns)
        sent = 0
        for conn in self.conns if send else ():
            if conn.seat == 1 and not conn.peer_ready and conn.transport is not None:
                conn.transport.send(TEXT, b"ready")
                sent += 1
        if self._waiting_handshake > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._handshake_done.wait(), wait)
        missing = sum(not conn.peer_ready for conn in self.conns)
        return {"seconds": time.monotonic() - started, "ready_sent": sent, "missing": missing}

    def end_progress(self) -> None:
        self._waiting_end -= 1
        if self._waiting_end <= 0 and self._end_done is not None:
            self._end_done.set()

    async def _wait_ends(self, receivers: list[Conn], limit: float) -> float:
        """Wait for ``end:N`` on every receiver; seconds waited (at most ``limit``)."""
        started = time.monotonic()
        self._end_done = asyncio.Event()
        self._waiting_end = sum(not conn.end_seen for conn in receivers)
        if self._waiting_end > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._end_done.wait(), limit)
        missing = sum(not conn.end_seen for conn in receivers)
        if missing:
            self.errors["no end marker (frames lost or late)"] += missing
        return time.monotonic() - started

    def _reset_run_state(self) -> None:
        for conn in self.conns:
            conn.expected = conn.received = conn.sent = conn.acked = 0
            conn.end_seen = False

    @staticmethod
    async def _sleep_until(moment: float) -> None:
        delay = moment - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    # scenarios

    async def cmd_pingpong(
        self, start: float, warm: float, duration: float, size: int
    ) -> dict[str, Any]:
        """Seat 0 sends a stamped frame; seat 1 bounces it; seat 0 stamps the next.

        Counts every frame received in the window (both seats: each one was
        relayed once) and seat 0's round-trip times in the window.
        """
        self._reset_run_state()
        window_start = int((start + warm) * 1e9)
        window_end = int((start + warm + duration) * 1e9)
        rtts = array("q")
        counted = 0
        padding = bytes(size - HEADER.size)
        errors = self.errors

        def bouncer(conn: Conn) -> Any:
            def on_binary(frame: WSFrame) -> None:
                nonlocal counted
                if window_start <= monotonic_ns() < window_end:
                    counted += 1
                conn.transport.send(BINARY, frame.get_payload_as_memoryview())  # type: ignore[union-attr]

            return on_binary

        def pinger(conn: Conn) -> Any:
            def on_binary(frame: WSFrame) -> None:
                nonlocal counted
                now = monotonic_ns()
                sent_at, seq = HEADER.unpack_from(frame.get_payload_as_memoryview())
                if seq != conn.sent or frame.payload_size != size:
                    errors["pingpong frame out of order or resized"] += 1
                if window_start <= now < window_end:
                    counted += 1
                    rtts.append(now - sent_at)
                if now < window_end:
                    ping(conn)

            return on_binary

        def ping(conn: Conn) -> None:
            conn.sent += 1
            conn.transport.send(BINARY, HEADER.pack(monotonic_ns(), conn.sent) + padding)  # type: ignore[union-attr]

        for conn in self.conns:
            conn.on_binary = pinger(conn) if conn.seat == 0 else bouncer(conn)
        gc.disable()
        try:
            await self._sleep_until(start)
            for conn in self.conns:
                if conn.seat == 0:
                    ping(conn)
            await self._sleep_until(start + warm + duration + 0.3)
        finally:
            gc.enable()
            for conn in self.conns:
                conn.on_binary = conn._ignore
        return {"frames": counted, "rtt_ns": rtts.tobytes()}

    async def cmd_stream(
        self, start: float, warm: float, duration: float, size: int, window: int, drain: float
    ) -> dict[str, Any]:
        """Seat 0 streams ``size``-byte frames to seat 1 as fast as the relay takes them.

        Frame: 8-byte sequence number, then a fixed body. The receiver checks
        each frame's sequence number, size and body; it counts frames and bytes
        received in the window, and acknowledges every ``window // 4`` frames
        with the text ``ack:N``. The sender keeps at most ``window`` frames
        unacknowledged (and stops while picows reports its socket full): without
        that window, loopback TCP buffers (megabytes per socket) would hold tens
        of seconds of frames and the final check would wait for all of them.
        """
        self._reset_run_state()
        window_start = int((start + warm) * 1e9)
        window_end = int((start + warm + duration) * 1e9)
        end = start + warm + duration
        body = bytes((i * 7 + 3) & 0xFF for i in range(size - SEQ.size))
        counted = 0
        errors = self.errors
        buffer = bytearray(SEQ.size) + body
        burst_frames = max(1, min(64, (64 * 1024) // size))
        ack_every = max(1, window // 4)

        def receiver(conn: Conn) -> Any:
            transport = conn.transport
            assert transport is not None

            def on_binary(frame: WSFrame) -> None:
                nonlocal counted
                data = frame.get_payload_as_bytes()
                if len(data) != size or not data.endswith(body):
                    errors["stream frame corrupted"] += 1
                seq = SEQ.unpack_from(data)[0]
                if seq != conn.expected:
                    errors["stream frame out of order"] += 1
                conn.expected = seq + 1
                conn.received += 1
                if conn.received % ack_every == 0:
                    transport.send(TEXT, b"ack:%d" % conn.received)
                if window_start <= monotonic_ns() < window_end:
                    counted += 1

            return on_binary

        async def send_stream(conn: Conn) -> None:
            transport = conn.transport
            assert transport is not None
            conn.resumed = asyncio.Event()
            while time.monotonic() < end:
                if conn.paused or conn.sent - conn.acked >= window:
                    conn.resumed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(conn.resumed.wait(), 0.5)
                    continue
                for _ in range(burst_frames):
                    SEQ.pack_into(buffer, 0, conn.sent)
                    transport.send(BINARY, buffer)
                    conn.sent += 1
                    if conn.paused or conn.sent - conn.acked >= window:
                        break
                await asyncio.sleep(0)
            conn.send_end()

        receivers = [conn for conn in self.conns if conn.seat == 1]
        senders = [conn for conn in self.conns if conn.seat == 0]
        for conn in receivers:
            conn.on_binary = receiver(conn)
        try:
            await self._sleep_until(start)
            await asyncio.gather(*(send_stream(conn) for conn in senders))
            waited = await self._wait_ends(receivers, drain)
        finally:
            for conn in self.conns:
                conn.on_binary = conn._ignore
        return {
            "frames": counted,
            "bytes": counted * size,
            "sent": sum(conn.sent for conn in senders),
            "received": sum(conn.received for conn in receivers),
            "drain_s": waited,
        }

    async def cmd_fleet(
        self, start: float, warm: float, duration: float, rate: float, size: int, drain: float
    ) -> dict[str, Any]:
        """Every connection sends ``rate`` frames/s, evenly spread in time.

        Frame: (send time, sequence number), padded to ``size``. Receivers
        check order and count, and record the one-way latency of frames sent
        in the window.
        """
        self._reset_run_state()
        window_start = int((start + warm) * 1e9)
        window_end = int((start + warm + duration) * 1e9)
        end = start + warm + duration
        latencies = array("q")
        errors = self.errors
        padding = bytes(size - HEADER.size)

        delivered = 0

        def receiver(conn: Conn) -> Any:
            def on_binary(frame: WSFrame) -> None:
                nonlocal delivered
                now = monotonic_ns()
                sent_at, seq = HEADER.unpack_from(frame.get_payload_as_memoryview())
                if seq != conn.expected:
                    errors["fleet frame out of order"] += 1
                conn.expected = seq + 1
                conn.received += 1
                if window_start <= sent_at < window_end:
                    latencies.append(now - sent_at)
                if window_start <= now < window_end:
                    delivered += 1

            return on_binary

        for conn in self.conns:
            conn.on_binary = receiver(conn)
        # Each connection sends at its own phase of the period, so the load is even.
        period = 1.0 / rate
        rng = random.Random(self.index)
        schedule = sorted((rng.random() * period, n) for n in range(len(self.conns)))
        conns = self.conns
        late_ms = array("d")
        gc.disable()
        try:
            index, round_start = 0, start
            while True:
                phase, n = schedule[index]
                due = round_start + phase
                if due >= end:
                    break
                now = time.monotonic()
                if due > now + 0.002:
                    # uvloop's timers have 1 ms resolution: a shorter sleep would
                    # spin; frames due within 2 ms go now (stamped when sent).
                    await asyncio.sleep(due - now)
                    continue
                late_ms.append(max(0.0, now - due) * 1e3)
                conn = conns[n]
                if conn.transport is not None:
                    conn.transport.send(BINARY, HEADER.pack(monotonic_ns(), conn.sent) + padding)
                    conn.sent += 1
                index += 1
                if index == len(schedule):
                    index, round_start = 0, round_start + period
            for conn in conns:
                conn.send_end()
            waited = await self._wait_ends(conns, drain)
        finally:
            gc.enable()
            for conn in conns:
                conn.on_binary = conn._ignore
        late = sorted(late_ms)
        return {
            "latency_ns": latencies.tobytes(),
            "delivered": delivered,
            "sent": sum(conn.sent for conn in conns),
            "received": sum(conn.received for conn in conns),
            "send_late_p99_ms": late[int(len(late) * 0.99)] if late else 0.0,
            "drain_s": waited,
        }


def worker_main(pipe: Connection, index: int) -> None:
    """The entry point of one worker process (``multiprocessing``, spawn)."""
    import uvloop

    raise_nofile_limit()
    uvloop.run(Worker(pipe, index).main())
