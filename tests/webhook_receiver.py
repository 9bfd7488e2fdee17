"""A product's webhook on a loopback port: records what it receives, answers as told."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


@dataclass
class Receiver:
    """Answers ``statuses`` in turn (the last one forever); ``trickle`` drips a slow answer."""

    statuses: list[int] = field(default_factory=lambda: [204])
    location: str = ""
    trickle_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def next_status(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.received.append(
                Received(self.path, dict(self.headers.items()), body, time.monotonic())
            )
            if receiver.trickle_seconds:
                self._trickle()
                return
            self.send_response(receiver.next_status())
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _trickle(self) -> None:
            # A status line then one header byte every 0.2 s: each read succeeds,
            # only an overall deadline ends the exchange.
            ends = time.monotonic() + receiver.trickle_seconds
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                while time.monotonic() < ends:
                    self.wfile.write(b"X")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@contextmanager
def running(receiver: Receiver, path: str = "/hooks/hub") -> Iterator[Receiver]:
    """Serve ``receiver`` on 127.0.0.1 (a free port) while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
