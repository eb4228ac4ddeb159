"""The online service under bounded concurrent load on loopback: requests/s, p50/p99 latency, and overload.

    .venv/bin/python benchmarks/serve.py                        # a tiny untrained cascade: the service's cost
    .venv/bin/python benchmarks/serve.py --model models/music-fast --requests 16 --duration 4
    python benchmarks/serve.py --model models/music-default --cpus 16 --device cuda   # a GPU machine

Starts a local Ray cluster of ``--cpus`` CPUs and the service on 127.0.0.1 (a free port), warms it up, then:

1. load: ``--requests`` POST /v1/music (one prompt, ``--duration`` s, distinct seeds) with ``--concurrency``
   in flight; every request is timed from send to answer (the clip is generated and written by then);
2. baseline: the same requests one at a time through `MusicPipeline` in this process with
   ``--baseline-threads`` torch threads (default 1, what each replica gets on 2 CPUs; more threads than free
   cores makes torch far slower on a shared machine), and service / baseline;
3. overload: ``--overload`` requests at ``--overload-concurrency`` in flight against ``max_active_jobs`` =
   ``--max-active-jobs``: how many were shed with 503, and whether /healthz still answers.

Every request loop is bounded in count, and the cluster is shut down at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

import torch


def tiny_model(folder: Path) -> Path:
    from legato.codec import SMALL
    from legato.pipelines import MusicPipeline, TextEncoder
    from legato.recipes.networks import music_cascade

    text, params = TextEncoder(), SMALL.replace(n_mels=32)
    cascade = music_cascade(params, window=64, text_dim=text.dim, channels=(16, 32), sr_channels=(16, 32),
                            steps=(4, 2), batch_size=(4, 2))  # fmt: skip
    return MusicPipeline(cascade, params, text).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a music pipeline folder (default: a tiny untrained cascade)")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--baseline-threads", type=int, default=1)
    parser.add_argument("--max-active-jobs", type=int, default=8)
    parser.add_argument("--overload", type=int, default=48)
    parser.add_argument("--overload-concurrency", type=int, default=24)
    args = parser.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray import serve

    from legato.pipelines import MusicPipeline
    from legato.services.serve import Limits
    from legato.services.serve import main as serve_main
    from legato.services.serve.client import Client, load

    work = Path(tempfile.mkdtemp(prefix="legato-bench-serve-"))
    model = Path(args.model) if args.model else tiny_model(work / "model")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=args.cpus, include_dashboard=False, _temp_dir=str(work / "ray"),
             _node_ip_address="127.0.0.1", log_to_driver=False)  # fmt: skip
    try:
        limits = Limits(max_active_jobs=args.max_active_jobs, max_prompts=max(8, args.concurrency))
        started = time.perf_counter()
        url = serve_main("127.0.0.1", port, model, None, blocking=False, device=args.device, limits=limits,
                         jobs_dir=work / "jobs")  # fmt: skip
        print(f"service up in {time.perf_counter() - started:.1f} s: {url}, model {model}, {args.cpus} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        client = Client(url)
        client.music(prompt="warm up", duration=args.duration)

        bodies = [
            {"prompt": f"a reel number {i}", "seed": i, "duration": args.duration}
            for i in range(args.requests)
        ]
        result = load(url, bodies, requests=args.requests, concurrency=args.concurrency)
        print(f"load ({args.requests} requests, concurrency {args.concurrency}, {args.duration:g} s clips): "
              f"{result.summary()}")  # fmt: skip
        service_rate = result.ok / result.seconds

        torch.set_num_threads(args.baseline_threads)
        pipe = MusicPipeline.from_pretrained(model, device=args.device)
        pipe([bodies[0]["prompt"]], seeds=[0], duration=args.duration)  # warm-up
        start = time.perf_counter()
        for body in bodies:
            pipe([body["prompt"]], seeds=[body["seed"]], duration=args.duration)[0].save(work / "local.wav")
        local_rate = len(bodies) / (time.perf_counter() - start)
        print(f"baseline: MusicPipeline in-process, one request at a time, {args.baseline_threads} thread(s): "
              f"{local_rate:.2f} req/s; service / baseline = {service_rate / local_rate:.2f}")  # fmt: skip

        over = load(url, bodies[0], requests=args.overload, concurrency=args.overload_concurrency)
        health = client.health()["status"]
        print(f"overload ({args.overload} requests, concurrency {args.overload_concurrency}, max_active_jobs "
              f"{args.max_active_jobs}): {over.summary()}; /healthz after: {health}")  # fmt: skip
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
