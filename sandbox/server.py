"""Run a simulator (any WSGI app) on a loopback port in a background thread.

Tests and the demo start simulators in-process with :func:`serve`; ``flask sandbox`` uses the
same function on fixed ports. Only loopback addresses are ever bound.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """Simulators serve thousands of requests; they keep their own call logs instead of
    printing an access-log line per request."""

    def log_request(self, code="-", size="-") -> None:
        pass


@dataclass
class RunningServer:
    """A simulator serving on ``url`` until :meth:`stop` is called."""

    url: str
    server: BaseWSGIServer
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        return self.server.server_port

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(app, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` on ``host:port`` (0 picks a free port) in a daemon thread.

    Raises ValueError if ``host`` is not a loopback address: simulators are never exposed.
    """
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"simulators bind to loopback addresses only, not {host}")
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox:{port}", daemon=True)
    thread.start()
    return RunningServer(url=f"http://{host}:{server.server_port}", server=server, thread=thread)
