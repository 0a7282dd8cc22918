"""`prompthone dashboard`: a read-only web UI over the run store (needs the `dashboard` extra).

Runs (filter, pick several to compare), a run's summary, score per step and candidates (following a running run
live), each candidate's full prompt, ancestry and per-example wins and losses against the seed prompt.

>>> from prompthone.dashboard import create_app, serve                    # doctest: +SKIP
>>> app = create_app("runs/prompthone.sqlite")  # a Starlette app; test it with TestClient  # doctest: +SKIP
>>> serve("runs/prompthone.sqlite", "127.0.0.1", 8765)                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompthone.errors import ConfigError

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["INSTALL_HINT", "create_app", "serve"]

INSTALL_HINT = "prompthone dashboard needs the dashboard extra: pip install 'prompthone[dashboard]'"


def _require() -> None:
    """Fail first, with the install hint, when starlette, uvicorn or plotly is missing."""
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "plotly") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")


def create_app(store_url: str, *, refresh_s: float = 2.0, allowed_hosts: list[str] | None = None) -> Starlette:
    """The dashboard app over the store at `store_url`, opened read-only now (StoreError when it cannot be).

    A running run's page fetches new data every `refresh_s` seconds. `allowed_hosts` limits the Host headers
    served (`serve` sets the loopback names when it binds loopback); None serves any.
    """
    _require()
    from prompthone.dashboard.app import create_app as build

    return build(store_url, refresh_s=refresh_s, allowed_hosts=allowed_hosts)


def serve(store_url: str, host: str = "127.0.0.1", port: int = 8765, *, refresh_s: float = 2.0) -> None:
    """Serve the dashboard until Ctrl-C (then return); prints its URL first. Port 0 picks a free port."""
    _require()
    from rich.console import Console
    from rich.markup import escape

    from prompthone.dashboard.server import LOOPBACK_HOSTS, bind, is_loopback, make_server, url_of

    app = create_app(store_url, refresh_s=refresh_s, allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) else None)
    sock = bind(host, port)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"prompthone dashboard of {escape(app.state.store.url)} at [bold]{escape(url_of(sock))}[/] "
                  "(Ctrl-C stops it)")
    if not is_loopback(host):
        console.print(f"[yellow]listening on {escape(host)}: anyone who can reach it can read the store's runs[/]")
    try:
        make_server(app).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again: that is our clean stop
        pass
    finally:
        sock.close()
