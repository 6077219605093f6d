"""A static file server on 127.0.0.1 with HTTP Range support (single and multiple ranges), in a thread.

Python's ``http.server`` ignores ``Range``; GDAL's ``/vsicurl/`` needs it. Besides serving files the
server can fail on purpose, per path: ``fail_once[path] = 500`` answers 500 to the first request of
that path (to prove the retries), ``status[path] = 403`` answers every request with that code, ``fail_at[path] = {3}`` answers
500 to the third GET of that path (a failure in the middle of the reads). Every
request is logged in ``requests`` (method, path, Range header) for the tests to look at.
"""

from __future__ import annotations

import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

RANGE = re.compile(r"(\d*)-(\d*)")


class RangeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.fail_once: dict[str, int] = {}
        self.status: dict[str, int] = {}
        self.fail_at: dict[str, set[int]] = {}  # path → numbers (1-based) of its GET requests answered 500
        self.gets: dict[str, int] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _handler(self.root))
        self.thread = threading.Thread(target=self.serve_forever, name="range-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> "RangeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


def _handler(root: Path):
    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server: RangeServer

        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args) -> None:  # quiet
            pass

        def _forced(self) -> bool:
            path = urlsplit(self.path).path
            with self.server.lock:
                self.server.requests.append((self.command, self.path, self.headers.get("Range", "")))
                code = self.server.status.get(path) or self.server.fail_once.pop(path, None)
                if self.command == "GET":
                    n = self.server.gets[path] = self.server.gets.get(path, 0) + 1
                    code = code or (500 if n in self.server.fail_at.get(path, ()) else None)
            if code is None:
                return False
            body = f"forced {code}".encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return True

        def do_HEAD(self) -> None:
            if not self._forced():
                self._serve(body=False)

        def do_GET(self) -> None:
            if not self._forced():
                self._serve(body=True)

        def _serve(self, body: bool) -> None:
            file = Path(self.translate_path(urlsplit(self.path).path))
            if not file.is_file():
                self.send_error(404)
                return
            size = file.stat().st_size
            spec = self.headers.get("Range", "")
            ranges = _parse_ranges(spec, size) if spec.startswith("bytes=") else None
            if ranges == []:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with open(file, "rb") as fh:
                if not ranges:
                    self._send(200, fh.read() if body else b"", size, {"Accept-Ranges": "bytes"}, body)
                elif len(ranges) == 1:
                    a, b = ranges[0]
                    fh.seek(a)
                    self._send(206, fh.read(b - a + 1), b - a + 1,
                               {"Content-Range": f"bytes {a}-{b}/{size}", "Accept-Ranges": "bytes"}, body)
                else:
                    boundary = "segxaiboundary"
                    parts = []
                    for a, b in ranges:
                        fh.seek(a)
                        parts.append(f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                                     f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n".encode() + fh.read(b - a + 1) + b"\r\n")
                    data = b"".join(parts) + f"--{boundary}--\r\n".encode()
                    self._send(206, data, len(data), {"Content-Type": f"multipart/byteranges; boundary={boundary}"}, body)

        def _send(self, code: int, data: bytes, length: int, headers: dict, body: bool) -> None:
            self.send_response(code)
            headers.setdefault("Content-Type", "application/octet-stream")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


def _parse_ranges(spec: str, size: int) -> list[tuple[int, int]]:
    out = []
    for part in spec[len("bytes="):].split(","):
        m = RANGE.fullmatch(part.strip())
        if not m:
            continue
        a, b = m.groups()
        if a == "":
            n = int(b)
            a, b = max(0, size - n), size - 1
        else:
            a, b = int(a), min(int(b) if b else size - 1, size - 1)
        if a <= b and a < size:
            out.append((a, b))
    return out


__all__ = ["RangeServer"]
