"""Two adapters over the fake's one dispatch function: `responses` and a real HTTP server."""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit

import responses
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .state import Urls

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/")


class TransportMixin:
    """Adapters; the host class provides `handle`, `api_url`, `codeload_url`, `_served`."""

    def install(self, mock: responses.RequestsMock) -> None:
        """Serve the API base URL and the codeload host through `mock`; loopback passes through."""

        def callback(request: Any) -> tuple[int, dict[str, str], bytes]:
            body = request.body
            if isinstance(body, str):
                body = body.encode()
            return self.handle(  # type: ignore[attr-defined,no-any-return]
                request.method, request.url, dict(request.headers), body
            )

        web = Urls(self.api_url, self.codeload_url).web  # type: ignore[attr-defined]
        for base in (self.api_url, self.codeload_url, f"{web}/login/oauth"):  # type: ignore[attr-defined]
            split = urlsplit(base)
            origin, path = f"{split.scheme}://{split.hostname}", split.path.rstrip("/")
            pattern = re.compile(re.escape(origin) + r"(:\d+)?" + re.escape(path) + r"/.*")
            for method in METHODS:
                mock.add_callback(method, pattern, callback=callback)
        mock.add_passthru(LOOPBACK)
        self.responses_mock = mock  # tests may register their own mocks on it

    def serve(self) -> str:
        """Run the same dispatch on 127.0.0.1 in a background thread; returns its base URL."""

        @Request.application  # type: ignore[arg-type]
        def app(request: Request) -> Response:
            status, headers, body = self.handle(  # type: ignore[attr-defined]
                request.method, request.url, dict(request.headers), request.get_data()
            )
            resp = Response(body, status=status)
            for key, value in headers.items():
                resp.headers[key] = value
            return resp

        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="fake-github", daemon=True)
        thread.start()
        self._served.append(server)  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{server.server_port}"

    def close(self) -> None:
        """Stop every server started by `serve`."""
        while self._served:  # type: ignore[attr-defined]
            server = self._served.pop()  # type: ignore[attr-defined]
            server.shutdown()
            server.server_close()
