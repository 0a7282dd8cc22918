"""The dashboard's Starlette app: HTML pages over the run store and the JSON API they refresh from.

Pages: `/` (runs, filterable; pick several to compare), `/runs/{id}` (summary, score per step, candidates; it
follows a running run by fetching `/api/runs/{id}` every few seconds), `/runs/{id}/candidates/{cid}` (the full
prompt, its ancestry, wins and losses against the seed prompt per example) and `/compare?run=A&run=B`. Every page
has its JSON under `/api/...`. Only GET: the dashboard never writes to the store. Every text from the store is
escaped by jinja2's autoescaping (HTML) or set as text by the page's script; a Content-Security-Policy allows
scripts from the dashboard itself only. plotly.js is served from the installed plotly package: nothing is loaded
from the internet.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prompthone._version import __version__
from prompthone.dashboard.access import open_readonly
from prompthone.dashboard.candidate import candidate_view
from prompthone.dashboard.compare import MIN_RUNS, compare_view
from prompthone.dashboard.data import FILTERS, NotFound, list_view, run_view
from prompthone.errors import ConfigError, StoreError
from prompthone.report.figures import PALETTE
from prompthone.report.render import fmt_count, fmt_delta, fmt_num, fmt_score, fmt_seconds
from prompthone.store import RunStore

#: what a page may load: its own scripts, styles and API; plotly sets inline styles
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


def plotly_js() -> tuple[Path, str]:
    """The plotly.min.js of the installed plotly package, and its version (part of its URL: cached for good)."""
    import plotly
    from plotly.offline import get_plotlyjs_version

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js", get_plotlyjs_version()


class SecurityHeaders:
    """Adds the CSP and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def environment() -> Environment:
    env = Environment(loader=PackageLoader("prompthone.dashboard", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(score=fmt_score, delta=fmt_delta, num=fmt_num, seconds=fmt_seconds, count=fmt_count,
                       when=fmt_when, q=lambda v: quote(str(v), safe=""),
                       pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str))
    return env


def fmt_when(value: str | None) -> str:
    """An ISO timestamp (UTC) as 'YYYY-MM-DD HH:MM:SS'."""
    return "—" if not value else value.replace("T", " ")[:19]


class Dashboard:
    """The open store, the templates and the endpoints: each view (a function of the request returning plain
    data) is served twice, as a page (`/...`, rendered by its template) and as JSON (`/api/...`)."""

    #: (page, its JSON, view method, template)
    VIEWS = (("/", "/api/runs", "runs", "runs.html.j2"), ("/runs/{run_id}", "/api/runs/{run_id}", "run", "run.html.j2"),
             ("/runs/{run_id}/candidates/{cand_id:int}", "/api/runs/{run_id}/candidates/{cand_id:int}", "candidate",
              "candidate.html.j2"),
             ("/compare", "/api/compare", "compare", "compare.html.j2"))

    def __init__(self, store: RunStore, refresh_s: float) -> None:
        self.store = store
        self.env = environment()
        self.plotly_path, version = plotly_js()
        self.plotly_url = f"/static/plotly-{version}.min.js"
        self.common = {"store_url": store.url, "version": __version__, "plotly_url": self.plotly_url,
                       "refresh_ms": int(refresh_s * 1000), "palette": PALETTE}

    # -- views --------------------------------------------------------------------------------------------------

    def runs(self, request: Request) -> dict[str, Any]:
        return list_view(self.store, {k: request.query_params.get(k) for k in FILTERS})

    def run(self, request: Request) -> dict[str, Any]:
        return run_view(self.store, request.path_params["run_id"])

    def candidate(self, request: Request) -> dict[str, Any]:
        return candidate_view(self.store, request.path_params["run_id"], request.path_params["cand_id"])

    def compare(self, request: Request) -> dict[str, Any]:
        ids = list(dict.fromkeys(v for v in request.query_params.getlist("run") if v))
        if len(ids) < MIN_RUNS:
            raise HTTPException(400, f"pick at least {MIN_RUNS} runs to compare (got {len(ids)}): "
                                     "tick them on the runs page, or pass ?run=ID&run=ID")
        return compare_view(self.store, ids)

    # -- responses ----------------------------------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(template).render(**self.common, **context), status_code=status)

    def routes(self) -> list[BaseRoute]:
        def page(view: Callable[[Request], dict[str, Any]], template: str) -> Callable[[Request], Response]:
            return lambda request: self.render(template, view=view(request))

        def api(view: Callable[[Request], dict[str, Any]]) -> Callable[[Request], Response]:
            return lambda request: JSONResponse(view(request))

        routes: list[BaseRoute] = []
        for path, api_path, name, template in self.VIEWS:
            view = getattr(self, name)
            routes += [Route(path, page(view, template)), Route(api_path, api(view))]
        return [*routes, Route(self.plotly_url, self.plotly_file),
                Mount("/static", StaticFiles(packages=[("prompthone.dashboard", "static")]), name="static")]

    def plotly_file(self, request: Request) -> Response:
        return FileResponse(self.plotly_path, media_type="text/javascript",
                            headers={"cache-control": "public, max-age=31536000, immutable"})

    async def error(self, request: Request, exc: Exception) -> Response:
        """404 for an unknown run or candidate or path, 400 for a bad request (a group run has no run page: the
        message names its members), 503 when the store fails."""
        if isinstance(exc, NotFound):
            status, message = 404, str(exc)
        elif isinstance(exc, ConfigError):
            status, message = 400, str(exc)
        elif isinstance(exc, HTTPException):
            status = exc.status_code
            message = exc.detail if status != 404 else f"no page at {request.url.path}"
        else:  # StoreError: the store went away or failed mid-request
            status, message = 503, str(exc)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return self.render("error.html.j2", status=status, status_code=status, message=message)


def create_app(store_url: str, *, refresh_s: float = 2.0, allowed_hosts: list[str] | None = None) -> Starlette:
    """The dashboard over the store at `store_url` (opened now, read-only: StoreError when it cannot be).

    `refresh_s`: how often a page of a running run fetches new data. `allowed_hosts`: the Host headers served
    (`serve` passes the loopback names when bound to loopback, against DNS rebinding); None serves any.
    """
    dashboard = Dashboard(open_readonly(store_url), refresh_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        dashboard.store.close()

    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        NotFound: dashboard.error, StoreError: dashboard.error, HTTPException: dashboard.error,
        ConfigError: dashboard.error}
    app = Starlette(routes=dashboard.routes(), middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    app.state.store = dashboard.store
    return app
