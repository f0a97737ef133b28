"""What every mock server shares: a socketserver bound on 127.0.0.1, served from a daemon thread
(library use: tests, the rehearsal) or in the foreground (`python -m devtools.mocks.<name>`)."""

from __future__ import annotations

import socketserver
import threading


class BackgroundServer:
    """Subclasses build their socketserver in `make_server((host, port))`."""

    thread_name = "mock-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port  # 0 until bound: the OS picks a free one
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    def make_server(self, address: tuple[str, int]) -> socketserver.BaseServer:
        raise NotImplementedError

    def before_stop(self) -> None:
        """Release whatever holds a request open (a mock holding an answer back)."""

    def bind(self) -> socketserver.BaseServer:
        self._server = self.make_server((self.host, self.port))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        return self._server

    def start(self):
        """Serve from a background thread; returns self."""
        server = self.bind()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.before_stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def serve_in_foreground(self, banner: str) -> None:
        """Bind, print `banner` ("{url}" in it becomes the bound URL), serve until Ctrl-C."""
        server = self.bind()
        print(banner.replace("{url}", self.url), flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.before_stop()
            server.server_close()

    @property
    def url(self) -> str:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
