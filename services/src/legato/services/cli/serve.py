"""``legato serve``: the online service (`legato.services.serve`, a Ray Serve app), imported only when run.

The models are resolved here like every command's (``-m music-fast``, a folder, ``NAME=FOLDER``); without
``-m``, the bundled defaults found in the models folders. The rest is the service's own ``main``.
"""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path
from typing import Annotated

import typer

from legato.services.cli.common import (
    EXIT_FAILED,
    CliError,
    VaeSlicing,
    VaeTiling,
    fail,
    handle_errors,
    resolve_model,
)


def entry_point():
    """The service's entry function (``main``, else ``run``), or a clear error when it is not there."""
    try:
        import legato.services.serve as service
    except ModuleNotFoundError as err:
        if (err.name or "").startswith("legato.services.serve"):
            fail("the online service (legato.services.serve) is not part of this installation", EXIT_FAILED)
        raise
    entry = getattr(service, "main", None) or getattr(service, "run", None)
    if entry is None:
        fail("legato.services.serve has no main() or run() to start it", EXIT_FAILED)
    return entry


def models_to_serve(values: list[str]) -> dict[str, str]:
    """``NAME=MODEL`` or ``MODEL`` values as {name: folder}; none given: the default models found."""
    if not values:
        found = {}
        for kind in ("music", "video"):
            with contextlib.suppress(CliError):  # not installed here: the service's own default applies
                found[f"{kind}-default"] = str(resolve_model(None, kind)[0])
        return found
    models = {}
    for value in values:
        name, _, folder = value.rpartition("=")
        path = resolve_model(folder, None)[0]
        models[name or path.name] = str(path)
    return models


@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for every one).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 8000,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME=MODEL or MODEL (a folder or name), one music and one video; repeatable.",
            show_default="music-default and video-default",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="Where the stages run: cpu, cuda...")] = None,
    address: Annotated[
        str | None,
        typer.Option(help="A Ray cluster to serve on.", show_default="$RAY_ADDRESS or a new local one"),
    ] = None,
    blocking: Annotated[
        bool, typer.Option(help="Serve until interrupted (--no-blocking: start, print the URL, and return).")
    ] = True,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="LEGATO_SERVE_TOKEN",
            show_envvar=True,
            help="Every request must send Authorization: Bearer TOKEN (401 without it). Needed to "
            "listen on a host other than loopback.",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Listen on a host other than loopback without a token.")
    ] = False,
    jobs_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where job records and files go; a restarted service finds its earlier jobs there "
            "(every node of a cluster must see it).",
            show_default="~/.cache/legato/serve-PORT",
        ),
    ] = None,
    vae_tiling: VaeTiling = None,
    vae_slicing: VaeSlicing = None,
) -> None:
    """Start the online service: HTTP endpoints that generate music and video on a Ray Serve app."""
    models = models_to_serve(model or [])
    entry = entry_point()
    offered = {"host": host, "port": port, "models": models or None, "device": device, "address": address,
               "blocking": blocking, "jobs_dir": None if jobs_dir is None else str(jobs_dir.resolve()),
               "token": token, "insecure": insecure or None, "vae_tiling": vae_tiling,
               "vae_slicing": vae_slicing}  # fmt: skip
    params = inspect.signature(entry).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    entry(**{k: v for k, v in offered.items() if (takes_any or k in params) and v is not None})
