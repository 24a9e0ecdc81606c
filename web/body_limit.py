"""The request-body cap, applied by the server while the body streams in (ASGI middleware).

A request declaring a ``Content-Length`` over the cap is answered 413 before a byte of its body is
read; a chunked one is cut off, with the same 413, as soon as what arrived passes the cap. The cap
is the setting BAOXUE_REQUEST_MAX_MB (a home visit's photos are one body); the endpoints check each
file against its own cap (BAOXUE_UPLOAD_MAX_MB, BAOXUE_PHOTO_MAX_MB) as they read it.
"""
from __future__ import annotations

import json

from starlette.exceptions import HTTPException


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` inside the endpoint's body parsing: the app's HTTP error handler answers
    413 with the message (FastAPI passes an HTTPException raised while it reads a body through)."""


class BodyLimit:
    def __init__(self, app, *, max_mb: int):
        self.app, self.max_mb, self.cap = app, max_mb, max_mb * 2**20

    def message(self) -> str:
        return (f"请求内容超过 {self.max_mb}MB（上限：设置 BAOXUE_REQUEST_MAX_MB），未被读取 "
                f"(request body too large: BAOXUE_REQUEST_MAX_MB)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.cap:
            return await self._refuse(scope, send)
        seen, started, cut = 0, False, False

        async def counted():
            nonlocal seen, cut
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.cap:
                    cut = True
                    raise BodyTooLarge(413, self.message())
            return message

        async def watched(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if cut:  # the rest of the body is not wanted: the server closes instead of draining it
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:  # pragma: no cover - no endpoint answers before reading its body
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope, send) -> None:
        headers = dict(scope["headers"])
        wants_json = scope["path"].startswith("/api") or b"application/json" in headers.get(b"accept", b"")
        if wants_json:
            body, kind = json.dumps({"message": self.message()}, ensure_ascii=False).encode(), b"application/json"
        else:
            body = (f"<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>413</title>"
                    f"<p>{self.message()}</p><p><a href=\"/\">返回首页</a></p></html>").encode()
            kind = b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
