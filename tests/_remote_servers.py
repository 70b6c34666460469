"""Real servers on 127.0.0.1 for the remote-source tests.

- :class:`MediaHTTPServer`: aiohttp.web in a background thread. ``/media/NAME`` is an
  ``aiohttp.web.FileResponse`` (which honours Range requests); the server counts the body bytes of
  every GET it answers. Misbehaving endpoints: ``/status/CODE/NAME`` (that status),
  ``/flaky/N/NAME`` (503 for the first N GETs, then the file), ``/expire/N/NAME`` (the file for
  N GETs, then 403), ``/stall/NAME`` (never answers),
  ``/stall-body/NAME`` (answers HEAD, then stalls in the middle of a GET body),
  ``/cut/NAME`` (sends half of each range, then drops the connection), ``/text`` (an HTML page).
- :func:`moto_s3_server`: moto's standalone S3-compatible server (``ThreadedMotoServer``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MediaHTTPServer:
    """An aiohttp.web server on 127.0.0.1 serving ``files`` (name -> path)."""

    def __init__(self, files: dict[str, Path]):
        self.files = dict(files)
        self.bytes_served = 0
        self.bytes_by_name: dict[str, int] = {}  # bytes_served per file name of the route
        self.get_requests = 0
        self.client_ports: set[int] = set()  # the TCP connections requests came in on
        self.flaky_left: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop_event: asyncio.Event | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "MediaHTTPServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        from aiohttp import web

        self._stop_event = asyncio.Event()
        app = web.Application()
        app.router.add_get("/media/{name}", self._media)
        app.router.add_get("/status/{code}/{name}", self._status)
        app.router.add_get("/flaky/{n}/{name}", self._flaky)
        app.router.add_get("/expire/{n}/{name}", self._expire)
        app.router.add_get("/stall/{name}", self._stall)
        app.router.add_get("/stall-body/{name}", self._stall_body)
        app.router.add_get("/cut/{name}", self._cut)
        app.router.add_get("/text", self._text)
        app.on_response_prepare.append(self._count)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self._stop_event.set()
        await self._runner.cleanup()

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.port}/{route}"

    def reset_counts(self) -> None:
        self.bytes_served = 0
        self.bytes_by_name = {}
        self.get_requests = 0
        self.client_ports: set[int] = set()  # the TCP connections requests came in on

    # -- handlers ----------------------------------------------------------------------------

    async def _count(self, request, response) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.client_ports.add(peer[1])
        if request.method == "GET" and response.content_length:
            self.bytes_served += response.content_length
            name = request.match_info.get("name", "")
            self.bytes_by_name[name] = self.bytes_by_name.get(name, 0) + response.content_length
            self.get_requests += 1

    def _path(self, request) -> Path:
        from aiohttp import web

        name = request.match_info["name"]
        if name not in self.files:
            raise web.HTTPNotFound()
        return self.files[name]

    async def _media(self, request):
        from aiohttp import web

        return web.FileResponse(self._path(request))

    async def _status(self, request):
        from aiohttp import web

        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}")

    async def _flaky(self, request):
        from aiohttp import web

        key = request.path
        left = self.flaky_left.setdefault(key, int(request.match_info["n"]))
        if request.method == "GET" and left > 0:
            self.flaky_left[key] = left - 1
            return web.Response(status=503, text="busy")
        return web.FileResponse(self._path(request))

    async def _expire(self, request):
        """The file for the first N GETs, then 403 (an expired signed URL)."""
        from aiohttp import web

        key = "expire:" + request.path
        left = self.flaky_left.setdefault(key, int(request.match_info["n"]))
        if request.method == "GET":
            if left <= 0:
                return web.Response(status=403, text="expired")
            self.flaky_left[key] = left - 1
        return web.FileResponse(self._path(request))

    async def _stall(self, request):
        await self._stop_event.wait()  # never answers while the server runs
        raise ConnectionResetError

    async def _stall_body(self, request):
        from aiohttp import web

        path = self._path(request)
        if request.method == "HEAD":
            return web.FileResponse(path)
        start, stop = _range(request, path.stat().st_size)
        response = web.StreamResponse(status=206)
        response.content_length = stop - start
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{path.stat().st_size}"
        await response.prepare(request)
        with open(path, "rb") as f:
            f.seek(start)
            await response.write(f.read(max(1, (stop - start) // 4)))
        await self._stop_event.wait()
        raise ConnectionResetError

    async def _cut(self, request):
        from aiohttp import web

        path = self._path(request)
        if request.method == "HEAD":
            return web.FileResponse(path)
        start, stop = _range(request, path.stat().st_size)
        response = web.StreamResponse(status=206)
        response.content_length = stop - start
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{path.stat().st_size}"
        await response.prepare(request)
        with open(path, "rb") as f:
            f.seek(start)
            await response.write(f.read(max(1, (stop - start) // 2)))
        request.transport.close()  # drop the connection before the announced length
        return response

    async def _text(self, request):
        from aiohttp import web

        return web.Response(text="<html><body><h1>Not a video</h1>" + "lorem ipsum " * 400
                            + "</body></html>", content_type="text/html")


def _range(request, size: int) -> tuple[int, int]:
    rng = request.http_range
    start = rng.start or 0
    stop = size if rng.stop is None else min(size, rng.stop)
    return start, stop


def moto_s3_server():
    """Start moto's standalone S3 server on 127.0.0.1 and a free port: ``(server, endpoint)``."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"
