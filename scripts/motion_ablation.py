"""Does a video base stage bind a pan's direction to its caption? A CPU-sized ablation of the base stage.

Trains a small base stage (8 frames of 16x16, the video recipe's base at half its size; or of 32x32) from
scratch on the video dataset's training split plus its time-reversed twins, then samples every training pan
caption's left and right versions from the same noise and measures them with `horizontal_drift` (no
verifier)::

    python scripts/motion_ablation.py --data data/video --runs runs/ablation/plain
    python scripts/motion_ablation.py --data data/video --runs runs/ablation/pooled --pooled-text
    python scripts/motion_ablation.py --data data/video --runs runs/ablation/pyoco --frame-correlation 0.5

Prints, for the real clips and the samples: the share sliding the caption's way by more than
``--threshold`` pixels a frame, and the mean drift in the caption's direction; for the samples also the
share of same-noise (left, right) pairs where the pan-left sample's content moves further right than the
pan-right one's, the direct test of whether the caption or the noise picks the direction (0.5: the noise
does). Training resumes from the run
folder's checkpoints, so the same command with another ``--guidance`` only samples again. Findings are
recorded in models/README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from legato.cascade import Cascade, Item, LocalExecutor
from legato.diffusion import Conditioning, Denoiser, VPSchedule
from legato.diffusion.training import TrainConfig, Trainer
from legato.pipelines.build import stage_items, stage_objective, video_cascade
from legato.pipelines.bundled import TEXT_DIM
from legato.pipelines.datasets import load
from legato.pipelines.datasets.video import MOTIONS, speed_of, time_reversed
from legato.video.metrics import horizontal_drift


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data/video")
    parser.add_argument(
        "--runs", required=True, help="run folder: checkpoints, model, result-guidance-G.json"
    )
    parser.add_argument("--pooled-text", action="store_true", help="UNet3D pooled_text_conditioning")
    parser.add_argument(
        "--frame-correlation", type=float, default=0.0,
        help="train and sample on noise this correlated between frames (PYoCo; 0: independent)",
    )  # fmt: skip
    parser.add_argument("--channels", default="32,64", help="per UNet level, e.g. 32,64,64 for three levels")
    parser.add_argument("--base-size", type=int, default=16, choices=(16, 32), help="base frames' pixels")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "no"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds per (photo, speed) pan pair")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument(
        "--threshold", type=float, default=None, help="pixels a frame (default: base size / 64)"
    )
    args = parser.parse_args()
    args.threshold = args.threshold if args.threshold is not None else args.base_size / 64

    train = load(args.data).split(held_out=False)
    train = train + time_reversed(train)
    size = 2 * args.base_size  # this cascade's final size, from the dataset's 64x64
    samples = F.avg_pool3d(train.samples, (1, 64 // size, 64 // size)) if size < 64 else train.samples
    cascade = video_cascade(
        frames=16, size=size, text_dim=TEXT_DIM, channels=tuple(int(c) for c in args.channels.split(",")),
        steps=(32, 8, 8), guidance_scale=args.guidance, pooled_text=args.pooled_text,
        frame_correlation=args.frame_correlation,
    )  # fmt: skip
    stage = cascade.stages[0]
    network = stage.denoiser.network
    print(f"base: {sum(p.numel() for p in network.parameters()) / 1e6:.2f} M parameters, "
          f"{len(train.samples)} clips", flush=True)  # fmt: skip
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, learning_rate=3e-4, cond_dropout=0.1, ema_decay=0.99,
        lr_schedule="cosine", warmup_steps=min(200, args.steps // 10), checkpoint_every=100, log_every=50,
        progress=False, seed=0, mixed_precision=args.precision,
    )  # fmt: skip
    started = time.time()
    trainer = Trainer(network, VPSchedule.from_scheduler(stage.scheduler), stage_objective(stage),
                      stage_items(cascade, 0, samples, train.text), config, Path(args.runs), device=args.device)  # fmt: skip
    trainer.fit()
    trained = trainer.trained_network().float().eval()
    train_seconds = time.time() - started
    base = Cascade(
        (replace(stage, denoiser=Denoiser(trained, stage.denoiser.output_type)).to(args.device),)
    ).with_sampling(None, None, "dpm++")

    # (photo, speed) pairs whose left and right pans are both training captions
    motions = [MOTIONS[int(m)] for m in train.labels["motion"]]
    first = {}
    for i, (subject, speed, motion) in enumerate(
        zip(train.labels["subject"].tolist(), map(speed_of, train.captions), motions, strict=True)
    ):
        first.setdefault((subject, speed, motion), i)
    pairs = sorted(
        (first[(s, v, "pan left")], first[(s, v, "pan right")])
        for (s, v, m) in first
        if m == "pan left" and (s, v, "pan right") in first
    )
    work, way = [], []
    for k, (left, right) in enumerate(pairs):
        for seed in range(args.seeds):
            for row, sign in ((left, 1.0), (right, -1.0)):  # pan left: the content moves right (+)
                work.append(
                    Item(f"{k:02d}-{seed}-{row}", 1000 * k + seed, Conditioning(text=train.text[row]))
                )
                way.append(sign)
    way = torch.tensor(way, dtype=torch.double)
    with torch.no_grad():
        generated = torch.stack(LocalExecutor().run(base, work)).cpu()
    drift = horizontal_drift((generated + 1) / 2)
    rows = [int(item.id.rsplit("-", 1)[1]) for item in work]
    real_clips = base.downsample(0, samples[rows])
    real = horizontal_drift((real_clips + 1) / 2)
    along = {"real": real * way, "generated": drift * way}
    change = {  # mean absolute change between consecutive frames, in [0, 1] pixel units: still or boiling?
        name: ((c[:, :, 1:] - c[:, :, :-1]).abs().mean() / 2).item()
        for name, c in (("real", real_clips), ("generated", generated))
    }
    result = {
        "pooled_text": args.pooled_text,
        "frame_correlation": args.frame_correlation,
        "guidance": args.guidance,
        "parameters_M": sum(p.numel() for p in trained.parameters()) / 1e6,
        "train_seconds": round(train_seconds),
        "pairs": len(work) // 2,
        **{
            name: {
                "right way": (a > args.threshold).double().mean().item(),
                "px per frame": a.mean().item(),
                "mean |px|": (a.abs()).mean().item(),
                "frame change": change[name],
            }
            for name, a in along.items()
        },
        # the same noise, left then right caption: does the left caption's content move further right?
        "caption picks the side": (drift[0::2] > drift[1::2]).double().mean().item(),
        "left minus right, px": (drift[0::2] - drift[1::2]).mean().item(),
    }
    (Path(args.runs) / f"result-guidance-{args.guidance:g}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
