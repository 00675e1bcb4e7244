"""The draw-a-digit page and its REST API (FastAPI): the app, its routers, limits and error handling.

One router per area (`predict_routes`, `explain_routes`, `model_routes`, `feedback_routes`, `tf_serving`), the
shared model in `app.state` (`state.ServedModel`, reached through the `Served` dependency), the body limits as
middleware (`limits.py`). Every bad request gets a JSON error with a 4xx status that says what was wrong: a
`DigitlabError` answers with its class's `http_status` (an `ImageTooLarge` is a 413 wherever it is raised);
file-system paths never appear in responses.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitlab.errors import DigitlabError, ImageError
from digitlab.serving import explain_routes, feedback_routes, model_routes, predict_routes, tf_serving
from digitlab.serving.answers import ErrorAnswer
from digitlab.serving.config import SERVE_PIXELS, ServeConfig
from digitlab.serving.limits import BodyLimitMiddleware
from digitlab.serving.state import INLINE_PIXELS, ServedModel
from digitlab.settings import check_fields
from digitlab.web import STATIC as WEB_STATIC
from digitlab.web import render_page

__all__ = ["INLINE_PIXELS", "SERVE_PIXELS", "STATIC", "ServeConfig", "create_app"]

STATIC = Path(__file__).parent / "static"


def create_app(config: ServeConfig) -> FastAPI:
    """Build the app; the model loads here, so a bad model fails before the server starts.

    Args:
      config: the server's settings.

    Returns:
      The FastAPI app, its model thread running.

    Raises:
      ConfigError: a setting out of its range (one line naming its flag) or an unknown runtime.
      ModelError: the model cannot be loaded.
    """
    check_fields(config)
    served = ServedModel.load(config)
    app = FastAPI(
        title="digitlab",
        description="Handwritten digit recognition: the draw-a-digit page and its API.",
        version="1",
        responses={400: {"model": ErrorAnswer}},
    )
    app.state.served = served
    app.state.runtime = served.predictor.runtime.name
    app.state.model_info = model_routes.model_info(served)
    app.state.explain = explain_routes.ExplainService(config.model)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=config.max_body_bytes,
        seconds=config.body_timeout,
        predict_bytes=config.max_predict_body_bytes,
    )
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"])
    _add_error_handlers(app)
    app.get("/", include_in_schema=False)(page)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/web", StaticFiles(directory=WEB_STATIC), name="web")  # the page code shared with `export --format web`
    for area in (predict_routes, explain_routes, feedback_routes, model_routes, tf_serving):
        app.include_router(area.router)
    return app


@functools.cache
def _page_html() -> str:
    return render_page(Path(__file__).parent / "templates" / "index.html", "/web/")


async def page() -> HTMLResponse:
    """The draw-a-digit page (`templates/index.html` over the shared markup), never cached so a new version shows."""
    return HTMLResponse(_page_html(), headers={"Cache-Control": "no-cache"})


def error_answer(e: DigitlabError) -> JSONResponse:
    """A user-facing error as `{"error": message}` with its class's (or its instance's) HTTP status.

    Args:
      e: the error.

    Returns:
      The JSON response; 408 and 413 close the connection (the rest of that body is not read), 429 says when
      to retry.
    """
    status = e.http_status
    headers = {"Connection": "close"} if status in (408, 413) else {"Retry-After": "1"} if status == 429 else None
    message = f"image: {e}" if isinstance(e, ImageError) else str(e)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DigitlabError)
    async def user_error(_: Request, e: DigitlabError) -> JSONResponse:
        return error_answer(e)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": f"invalid request: {where or 'body'}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception) -> JSONResponse:  # a bug: say so without leaking internals
        return JSONResponse({"error": f"internal error ({type(e).__name__})"}, status_code=500)
