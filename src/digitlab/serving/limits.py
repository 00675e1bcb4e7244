"""The body-size limit and the body deadline, as ASGI middleware around every route.

A route reads its body with `await request.body()` as usual; the middleware's `receive` refuses a body as soon
as it is known to be over the limit (from `Content-Length`, which cannot be trusted, or from the bytes counted
so far: 413) and a body that has not fully arrived within the deadline (408): a client trickling bytes must not
hold a connection forever. The refusal is raised inside the route, so the app's one error handler answers it.
"""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitlab.serving.config import BODY_SECONDS, MAX_BODY_BYTES, MAX_PREDICT_BODY_BYTES
from digitlab.serving.requests import BadRequest

PREDICT_PREFIX = "/v1/models/"


class BodyLimitMiddleware:
    """Refuses request bodies over the limit (413) or still arriving `seconds` after the request (408).

    Args:
      app: the ASGI app to wrap.
      max_bytes: the largest body accepted, in bytes.
      seconds: how long after the request's start its whole body may take to arrive, in seconds.
      predict_bytes: the largest body of a TF Serving REST request (paths under `PREDICT_PREFIX`), in bytes.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        seconds: float = BODY_SECONDS,
        predict_bytes: int = MAX_PREDICT_BODY_BYTES,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.predict_bytes = predict_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, with `receive` limited for HTTP requests."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._limited(scope, receive), send)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        declared = Headers(scope=scope).get("content-length")
        limit = self.predict_bytes if scope.get("path", "").startswith(PREDICT_PREFIX) else self.max_bytes
        deadline = time.monotonic() + self.seconds
        size, done = 0, False

        async def limited_receive() -> Message:
            nonlocal size, done
            if done:  # the body is in: what follows (a disconnect) has no deadline
                return await receive()
            self._check_declared(declared, limit)
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    message = await receive()
            except TimeoutError as e:
                raise BadRequest(f"the request body did not arrive within {self.seconds:g} s", 408) from e
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BadRequest(f"request body over the limit of {limit:,} bytes", 413)
                done = not message.get("more_body", False)
            return message

        return limited_receive

    def _check_declared(self, declared: str | None, limit: int) -> None:
        if declared is None:
            return
        if not declared.isdigit():
            raise BadRequest("invalid Content-Length header")
        if int(declared) > limit:
            raise BadRequest(f"request body over the limit of {limit:,} bytes", 413)
