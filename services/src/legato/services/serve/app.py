"""`build_app`: the Serve application (an ingress and one deployment per cascade stage); `main`: run it.

Resources: unless ``resources`` says otherwise, the cluster's CPUs are shared evenly by the ingress and
every stage replica (`legato.pipelines.ray_executor.plan` splits each pipeline's share), torch threads per
replica follow, and on a cluster with GPUs the stages run on CUDA, sharing the GPUs evenly.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ray import serve

from legato.pipelines.folders import load_pipeline_cascade
from legato.pipelines.ray_cluster import connect
from legato.pipelines.ray_executor import StageResources, plan
from legato.services.serve.schemas import Limits
from legato.services.serve.service import Ingress
from legato.services.serve.stages import StageDeployment, with_device

APP_NAME = "legato"


def _cluster() -> dict[str, float]:
    import ray

    if ray.is_initialized():
        return dict(ray.cluster_resources())
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def build_app(
    music_model: str | os.PathLike[str] | None = None,
    video_model: str | os.PathLike[str] | None = None,
    *,
    device: str | None = None,
    limits: Limits | None = None,
    jobs_dir: str | os.PathLike[str] | None = None,
    resources: dict[str, dict[str, StageResources]] | None = None,
    ingress_cpus: float | None = None,
    cluster: dict[str, float] | None = None,
    token: str | None = None,
    vae_tiling: bool | None = None,
    vae_slicing: bool | None = None,
) -> Any:
    """The bound Serve application, for ``serve.run(build_app(...))`` or your own composition.

    Args:
        music_model, video_model: pipeline folders (``models/music-default``...); at least one.
        device: where the stages run (default: ``"cuda"`` on a cluster with GPUs, else ``"cpu"``).
        limits: what the server accepts (`Limits`).
        jobs_dir: where job records and files go (default: `default_jobs_dir`, the same folder after a restart,
            which finds the earlier jobs there and fails those left running); every ingress replica must see
            it, so on several nodes make it a shared folder.
        resources: per pipeline (``"music"``/``"video"``), per stage name: replicas, CPUs, GPUs per replica.
        ingress_cpus: CPUs of the ingress replica (default: an even share).
        cluster: the resources to plan for (default: the connected Ray cluster's).
        token: every request must then carry ``Authorization: Bearer <token>`` (401 without it).
        vae_tiling, vae_slicing: latent models decode in tiles and/or one image or frame at a time
            (`legato.cascade.Cascade.with_vae`; None: as the folder says); pixel models are left as they are.
    """
    # Absolute paths: replicas need not share the driver's working folder.
    models = {k: str(Path(p).resolve()) for k, p in (("music", music_model), ("video", video_model)) if p}
    if not models:
        raise ValueError(
            "give music_model=, video_model= or both: pipeline folders such as models/music-default"
        )
    for kind, path in models.items():
        if not (Path(path) / "cascade.json").is_file():
            raise FileNotFoundError(
                f"{kind}_model={path!r} is not a pipeline folder (no cascade.json); give a folder that "
                f"{'Music' if kind == 'music' else 'Video'}Pipeline.save_pretrained wrote, e.g. models/{kind}-default"
            )
    limits = limits or Limits()
    cluster = dict(cluster or _cluster())
    device = device or ("cuda" if cluster.get("GPU", 0) > 0 else "cpu")
    if device.startswith("cuda") and not cluster.get("GPU", 0) > 0:
        raise ValueError(f"device={device!r} but the cluster has no GPUs; use device='cpu' or add GPU nodes")
    resources = resources or {}
    unknown = set(resources) - set(models)
    if unknown:
        raise ValueError(f"resources names {sorted(unknown)}; this app runs {sorted(models)}")
    cascades = {k: with_device(load_pipeline_cascade(p, k, "cpu")[0], device) for k, p in models.items()}
    vae = with_vae(cascades, models, tiling=vae_tiling, slicing=vae_slicing)
    specs = {k: {s.name: resources.get(k, {}).get(s.name, StageResources()) for s in c.stages}
             for k, c in cascades.items()}  # fmt: skip
    actors = {k: sum(r.replicas for r in spec.values()) for k, spec in specs.items()}
    total = sum(actors.values()) + 1
    cpus = cluster.get("CPU", 0.0)
    ingress_cpus = cpus / total if ingress_cpus is None else ingress_cpus
    gpu_share = min(1.0, cluster.get("GPU", 0.0) / (total - 1)) if device.startswith("cuda") else None
    stages: dict[str, list[Any]] = {"music": [], "video": []}
    for kind, cascade in cascades.items():
        spec = {n: r if r.num_gpus is not None else StageResources(r.replicas, r.num_cpus, gpu_share)
                for n, r in specs[kind].items()}  # fmt: skip
        share = {"CPU": (cpus - ingress_cpus) * actors[kind] / (total - 1), "GPU": cluster.get("GPU", 0.0)}
        placement = plan(cascade, spec, share)
        for i, stage in enumerate(cascade.stages):
            queue = limits.max_active_jobs * math.ceil(limits.max_prompts / stage.batch_size) + 1
            stages[kind].append(
                StageDeployment.options(
                    name=f"{kind}-{stage.name}", num_replicas=placement.replicas[i],
                    ray_actor_options={"num_cpus": placement.cpus[i], "num_gpus": placement.gpus[i]},
                    max_queued_requests=queue,
                ).bind(models[kind], kind, i, device, placement.threads[i], vae.get(kind))
            )  # fmt: skip
    jobs_dir = str(Path(jobs_dir or default_jobs_dir()).resolve())
    Path(jobs_dir).mkdir(parents=True, exist_ok=True)
    return Ingress.options(
        ray_actor_options={"num_cpus": ingress_cpus},
        max_ongoing_requests=limits.max_active_jobs + 32,  # room for polls and downloads besides jobs
    ).bind(models.get("music"), stages["music"], models.get("video"), stages["video"], jobs_dir, limits,
           max(1, math.floor(ingress_cpus)), uuid.uuid4().hex, token, vae)  # fmt: skip


def with_vae(cascades: dict[str, Any], models: dict[str, str], *, tiling: bool | None,
             slicing: bool | None) -> dict[str, dict[str, bool | None]]:  # fmt: skip
    """Replaces each latent cascade of ``cascades`` (loaded from ``models``, folders by kind) by its
    ``with_vae(tiling=, slicing=)``; returns those settings by kind, for the replicas to apply (pixel models
    have none, and are left as they are)."""
    latent = latent_kinds(models, tiling, slicing)
    if tiling is None and slicing is None:
        return {}
    cascades.update({k: cascades[k].with_vae(tiling=tiling, slicing=slicing) for k in latent})
    return {k: {"tiling": tiling, "slicing": slicing} for k in latent}


def latent_kinds(
    models: Mapping[str, str | os.PathLike[str] | None], tiling: bool | None, slicing: bool | None
) -> list[str]:
    """The kinds of ``models`` (folders by kind) that decode latents (their cascade.json has a decode step),
    read before anything starts; tiling or slicing with none of them is refused."""
    latent = [kind for kind, folder in models.items() if folder and _decodes(Path(folder))]
    if (tiling or slicing) and not latent:
        raise ValueError(
            f"vae_tiling / vae_slicing (--vae-tiling, --vae-slicing) are for latent models, and "
            f"{', '.join(str(f) for f in models.values() if f)} sample pixels; serve an imported checkpoint, "
            "or leave them off"
        )
    return latent


def _decodes(folder: Path) -> bool:
    try:
        stages = json.loads((folder / "cascade.json").read_text()).get("stages", [])
    except (OSError, ValueError):
        return False  # not a pipeline folder: build_app names it
    return any(s.get("step") == "decode" for s in stages)


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine alone (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_jobs_dir(port: int = 8000) -> Path:
    """Where a service keeps its jobs unless told: ``$XDG_CACHE_HOME/legato/serve-<port>`` (``~/.cache``), one
    folder per port, so that a restarted service finds its earlier jobs."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "legato" / f"serve-{port}"


def by_kind(
    models: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]],
) -> dict[str, str]:
    """Pipeline folders (a list, or named as ``legato serve -m NAME=FOLDER`` names them) by their kind,
    ``"music"`` or ``"video"``, read from each folder's cascade.json; at most one of each."""
    found: dict[str, str] = {}
    for folder in models.values() if isinstance(models, Mapping) else models:
        try:
            kind = json.loads((Path(folder) / "cascade.json").read_text())["metadata"]["pipeline"]
        except (OSError, ValueError, KeyError) as err:
            raise FileNotFoundError(
                f"{folder} is not a pipeline folder ({err}); give folders such as models/music-default"
            ) from err
        if kind in found:
            raise ValueError(f"{found[kind]} and {folder} are both {kind} models; serve one of each kind")
        found[kind] = str(folder)
    return found


def main(
    host: str = "127.0.0.1",
    port: int = 8000,
    music_model: str | os.PathLike[str] | None = "models/music-default",
    video_model: str | os.PathLike[str] | None = "models/video-default",
    *,
    models: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]] | None = None,
    blocking: bool = True,
    device: str | None = None,
    limits: Limits | None = None,
    jobs_dir: str | os.PathLike[str] | None = None,
    resources: dict[str, dict[str, StageResources]] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    token: str | None = None,
    insecure: bool = False,
    vae_tiling: bool | None = None,
    vae_slicing: bool | None = None,
) -> str:
    """Serve Legato over HTTP on ``host:port``: connect to Ray (``address``, ``RAY_ADDRESS``, or a new
    local cluster of ``num_cpus``), deploy `build_app`, and return the base URL. With ``blocking`` it
    serves until Ctrl-C and then shuts Serve (and a cluster it started) down.

    ``models`` (folders, a list or by name) replaces ``music_model`` and ``video_model``: each folder's kind
    comes from its cascade.json. ``token`` (default ``$LEGATO_SERVE_TOKEN``): every request must carry
    ``Authorization: Bearer <token>``. A host other than loopback needs a token, or ``insecure=True`` to
    serve anyone who can reach it. ``vae_tiling`` / ``vae_slicing``: latent models decode in tiles / one
    image or frame at a time (`build_app`)."""
    import ray

    token = token or os.environ.get("LEGATO_SERVE_TOKEN") or None
    if not (token or insecure or loopback(host)):
        raise ValueError(
            f"host={host!r} serves anyone who can reach this machine; give a token (--token, or "
            "$LEGATO_SERVE_TOKEN) that clients send as Authorization: Bearer, or --insecure to serve without one"
        )

    if models:
        found = by_kind(models)
        music_model, video_model = found.get("music"), found.get("video")

    # a server of pixel models alone refuses vae_tiling/vae_slicing here, before Ray starts
    latent_kinds({"music": music_model, "video": video_model}, vae_tiling, vae_slicing)
    started = not ray.is_initialized()
    if started:
        connect(address, num_cpus=num_cpus)  # a local cluster it starts is stopped even if it is killed
    try:
        serve.start(http_options={"host": host, "port": port})
        app = build_app(music_model, video_model, device=device, limits=limits,
                        jobs_dir=jobs_dir or default_jobs_dir(port),
                        resources=resources, token=token, vae_tiling=vae_tiling,
                        vae_slicing=vae_slicing)  # fmt: skip
        serve.run(app, name=APP_NAME, route_prefix="/")
    except BaseException:
        if started:
            ray.shutdown()
        raise
    url = f"http://{host}:{port}"
    print(f"legato serve: {url} (music: {music_model}, video: {video_model}); API: {url}/openapi.json")
    if not blocking:
        return url
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("legato serve: stopping")
    finally:
        serve.shutdown()
        if started:
            ray.shutdown()
    return url
