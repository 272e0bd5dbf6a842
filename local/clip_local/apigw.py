"""Turn real HTTP requests into API Gateway REST (proxy integration) events, as API Gateway does.

Routes, the function behind each, the API-key requirement and the Cognito authorizer come from
template.yaml, so the local API answers like the deployed one: an unknown route, a missing or wrong key, and
a missing, forged or expired reviewer's token get the answers the template's ``GatewayResponses`` give.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


#: Checks a reviewer's ``Authorization`` header as the Cognito authorizer does: its claims, or
#: :class:`TokenRefused`.
Authorizer = Callable[[str | None], dict[str, str]]


class TokenRefused(Exception):
    """Why an authorizer refused a token (for the local API's log only: the client gets the gateway's 401).
    Any other exception is the local stack's own fault (moto unreachable), and is not hidden as a 401."""


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # /v1/classifications/{pictureId}
    pattern: re.Pattern[str]
    api_key_required: bool = True
    #: The function (logical id) the route invokes.
    function: str = ""
    #: The API's authorizer the route needs (``ReviewerPool``), if any.
    authorizer: str | None = None

    @classmethod
    def of(
        cls,
        method: str,
        resource: str,
        *,
        api_key_required: bool = True,
        function: str = "",
        authorizer: str | None = None,
    ) -> Route:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource))
        return cls(method, resource, re.compile(f"^{regex}$"), api_key_required, function, authorizer)


class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name = "local"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:local"

    def __init__(self, timeout_seconds: float = 30) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def build_event(
    method: str,
    route: Route,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    query: str = "",
    stage: str = "api",
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    match = route.pattern.match(raw_path)
    assert match is not None
    # API Gateway REST passes path parameters as they were sent: still percent-encoded.
    path_params = match.groupdict() or None
    qs = parse_qs(query, keep_blank_values=True)
    try:
        text, is_b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode(), True
    return {
        "resource": route.resource,
        "path": raw_path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in qs.items()} or None,
        "multiValueQueryStringParameters": qs or None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.resource,
            "httpMethod": method,
            "path": f"/{stage}{raw_path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "apiKey": headers.get("x-api-key")},
            **({"authorizer": {"claims": claims}} if claims is not None else {}),
        },
        "body": text if body else None,
        "isBase64Encoded": is_b64,
    }


#: Static files the local server may send, by suffix.
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}
#: Cross-origin isolation, so onnxruntime-web may use threads (SharedArrayBuffer).
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}


@dataclass(frozen=True)
class StaticMount:
    """Files under ``directory`` served at ``prefix`` (the prefix itself, or ``/`` for the root mount, serves
    ``index``). ``isolated``: sent with the cross-origin isolation headers (the demo's threads need them; the
    review page shows presigned S3 images, which an isolated page would refuse)."""

    prefix: str
    directory: Path
    index: str | None = None
    isolated: bool = True

    def resolve(self, path: str) -> Path | None:
        if path == self.prefix and self.index:
            return self.directory / self.index
        if not path.startswith(self.prefix) or path == self.prefix:
            return None
        target = (self.directory / unquote(path[len(self.prefix) :])).resolve()
        root = self.directory.resolve()
        # Never outside the mount (../), and only the kinds of files a page needs.
        if root not in target.parents or target.suffix not in STATIC_TYPES or not target.is_file():
            return None
        return target


class LocalApi:
    """A threaded HTTP server on 127.0.0.1 in front of the API's Lambda handlers, one per function (and, for
    the browser pages, a few static folders: the pages, onnxruntime-web and the model the demo runs)."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        routes: list[Route],
        *,
        api_key: str | None,
        port: int = 0,
        static: list[StaticMount] | None = None,
        authorizers: Mapping[str, Authorizer] | None = None,
    ) -> None:
        self.handlers = dict(handlers)
        self.routes = routes
        self.api_key = api_key
        self.static = static or []
        self.authorizers = dict(authorizers or {})
        missing = {r.function for r in routes} - self.handlers.keys()
        missing |= {f"authorizer {r.authorizer}" for r in routes if r.authorizer} - {
            f"authorizer {a}" for a in self.authorizers
        }
        if missing:
            raise ValueError(f"routes need what the local API was not given: {sorted(missing)}")
        api = self

        class _Request(BaseHTTPRequestHandler):
            def __getattr__(self, name: str) -> Any:
                # Every HTTP method, declared or not, goes to the router: API Gateway answers methods no
                # route declares with its MISSING_AUTHENTICATION_TOKEN answer, not http.server's 501.
                if name.startswith("do_"):
                    return lambda: api._serve(self, name[3:])
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Request)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalApi:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        raw_path = parts.path[len("/api") :] if parts.path.startswith("/api/") else parts.path
        route = next((r for r in self.routes if r.method == method and r.pattern.match(raw_path)), None)
        if route is None and method in ("GET", "HEAD") and not parts.path.startswith("/api/"):
            found = next(((m, t) for m in self.static if (t := m.resolve(parts.path)) is not None), None)
            if found is not None:
                mount, target = found
                headers = {
                    "Content-Type": STATIC_TYPES[target.suffix],
                    "Cache-Control": "no-cache",
                    **(ISOLATION_HEADERS if mount.isolated else {}),
                }
                self._reply(request, 200, headers, b"" if method == "HEAD" else target.read_bytes())
                return
        if route is None:
            self._gateway_reply(request, "MISSING_AUTHENTICATION_TOKEN")
            return
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self.api_key is not None and route.api_key_required and headers.get("x-api-key") != self.api_key:
            self._gateway_reply(request, "INVALID_API_KEY")
            return
        claims = None
        if route.authorizer:
            try:
                claims = self.authorizers[route.authorizer](headers.get("authorization"))
            except TokenRefused:
                self._gateway_reply(request, "UNAUTHORIZED")
                return
        length = int(headers.get("content-length") or 0)
        body = request.rfile.read(length) if length else b""
        event = build_event(method, route, raw_path, headers, body, parts.query, claims=claims)
        response = self.handlers[route.function](event, LambdaContext())
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
        out_headers = dict(response.get("headers") or {})
        for key, values in (response.get("multiValueHeaders") or {}).items():
            out_headers[key] = ", ".join(values)
        self._reply(request, int(response["statusCode"]), out_headers, data)

    def _gateway_reply(self, request: BaseHTTPRequestHandler, kind: str) -> None:
        """API Gateway's own answer of this type, as the template configures it."""
        from .template import gateway_responses, load_template

        status, headers, body = gateway_responses(load_template())[kind]
        self._reply(request, status, {"Content-Type": "application/json", **headers}, body)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
