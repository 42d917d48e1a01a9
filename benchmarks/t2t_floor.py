"""The floor of the tick-to-trade benchmark: the same frames, the least work a Python process can do.

A bare picows client receives the market-data frames the node received during its run, at the same
pace, parses each with ``orjson.loads`` and writes the order frames the node wrote for it (the same
bytes, the same number per frame) on the same kind of connection, timing from the frame's arrival
(picows's callback) to each write returning, exactly as the node's samples are timed. No book, no
strategy, no order state, no risk: what remains is the machine's own cost of waking up, reading a
frame, parsing JSON and writing to a socket, cold after the same idle interval. The node's figures
are reported as ratios to it.

    python benchmarks/t2t_floor.py serve FRAMES_FILE INTERVAL_S   # the sending side (a subprocess)

The sending side runs in its own process under ``SCHED_BATCH`` like the venue simulators, reads
length-prefixed frames from ``FRAMES_FILE``, prints its port, sends one frame every ``INTERVAL_S``
to the first client and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect, ws_create_server


def write_frames(path: Path, frames: list[bytes]) -> None:
    with path.open("wb") as f:
        for frame in frames:
            f.write(struct.pack("<I", len(frame)))
            f.write(frame)


def read_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    frames, at = [], 0
    while at < len(data):
        (n,) = struct.unpack_from("<I", data, at)
        frames.append(data[at + 4 : at + 4 + n])
        at += 4 + n
    return frames


class _Sender(WSListener):
    def __init__(self, frames: list[bytes], interval_s: float, done: asyncio.Event) -> None:
        super().__init__()
        self._frames = frames
        self._interval_s = interval_s
        self._done = done

    def on_ws_connected(self, transport: WSTransport) -> None:
        asyncio.get_running_loop().create_task(self._pump(transport))

    async def _pump(self, transport: WSTransport) -> None:
        for frame in self._frames:
            await asyncio.sleep(self._interval_s)
            transport.send(WSMsgType.TEXT, frame)
        await asyncio.sleep(self._interval_s)
        transport.disconnect()
        self._done.set()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        pass  # the client's order frames: read and dropped


async def _serve(path: Path, interval_s: float) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    frames = read_frames(path)
    done = asyncio.Event()
    server = await ws_create_server(lambda _req: _Sender(frames, interval_s, done), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done.wait(), timeout=len(frames) * interval_s + 60)
    server.close()


class _Client(WSListener):
    def __init__(self, orders: list[list[bytes]]) -> None:
        super().__init__()
        self._orders = orders
        self._next = 0
        self.samples_ns: list[int] = []
        self.closed = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        arrived = time.time_ns()
        orjson.loads(frame.get_payload_as_bytes())
        orders = self._orders[self._next % len(self._orders)]
        self._next += 1
        for payload in orders:
            transport.send(WSMsgType.TEXT, payload)
            self.samples_ns.append(time.time_ns() - arrived)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed.set()


async def _measure(port: int, orders: list[list[bytes]], timeout_s: float) -> list[int]:
    _transport, client = await ws_connect(lambda: _Client(orders), f"ws://127.0.0.1:{port}/")
    assert isinstance(client, _Client)
    await asyncio.wait_for(client.closed.wait(), timeout_s)
    return client.samples_ns


def measure_floor(frames: list[bytes], orders: list[list[bytes]], interval_s: float) -> list[int]:
    """Samples (ns) of the bare client: ``frames[i]`` arrives, is parsed, ``orders[i]`` are written."""
    if not frames or len(frames) != len(orders):
        raise ValueError("one list of order frames per market-data frame is needed")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.bin"
        write_frames(path, frames)
        proc = subprocess.Popen(
            [sys.executable, __file__, "serve", str(path), str(interval_s)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            return asyncio.run(_measure(port, orders, len(frames) * interval_s + 30))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "serve":
        raise SystemExit(__doc__)
    asyncio.run(_serve(Path(sys.argv[2]), float(sys.argv[3])))
