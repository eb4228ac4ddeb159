"""Does a video base stage bind a pan's direction to its caption? A CPU-sized ablation of the base stage.

Trains a small base stage (8 frames of 16x16, the video recipe's base at half its size; or of 32x32) from
scratch on the video dataset's training split plus its time-reversed twins, then samples every training pan
caption's left and right versions from the same noise and measures them with `horizontal_drift` (no
verifier)::

    python recipes/scripts/motion_ablation.py --data data/video --runs runs/ablation/plain
    python recipes/scripts/motion_ablation.py --data data/video --runs runs/ablation/pooled --pooled-text
    python recipes/scripts/motion_ablation.py --data data/video --runs runs/ablation/pyoco --frame-correlation 0.5

``--photo``, ``--motions``, ``--speed`` and ``--clips-per-caption`` train on a subset instead: with a few clips
it is a check that the whole stack (data, trainer, text conditioning, sampler) can bind a direction to its
words at all, before blaming the budget::

    python recipes/scripts/motion_ablation.py --runs runs/ablation/astro-k4 --photo astronaut \
        --motions "pan left,pan right" --speed fast --clips-per-caption 4 --steps 2000 --batch-size 8 --seeds 8

``--init RUN`` starts from another run's trained base (a curriculum: one photo's pans, then every photo's)::

    python recipes/scripts/motion_ablation.py --runs runs/ablation/fast-from-astro --init runs/ablation/astro-k4 \
        --motions "pan left,pan right" --speed fast --steps 2000 --batch-size 16 --seeds 8

``--steps 0`` reads out the ``--init`` run as it is, e.g. the recipe's base (8 frames of 32x32) trained by
``legato train video --stage base --runs runs/video-warm ...``::

    python recipes/scripts/motion_ablation.py --runs runs/video-warm/readout --init runs/video-warm/base \
        --base-size 32 --channels 64,128 --steps 0 --motions "pan left,pan right" --speed fast --seeds 8

Prints, for the real clips and the samples: the share sliding the caption's way by more than
``--threshold`` pixels a frame, and the mean drift in the caption's direction; for the samples also the
share of same-noise (left, right) pairs where the pan-left sample's content moves further right than the
pan-right one's, the direct test of whether the caption or the noise picks the direction (0.5: the noise
does), and the base stage's loss under another caption than each clip's own, noise level by noise level
(`motion_probe`; ``--levels``). The same readout of held-out pans ("held out": a photo whose pan one way
is held out, paired with its other way, a training caption) asks whether a direction carries over to a photo
never seen panned that way, as the verifier's held-out prompts do. Training resumes from the run
folder's checkpoints, so the same command with another ``--guidance`` only samples again. Findings are
recorded in recipes/docs/history.md.
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
from legato.diffusion.training.checkpoint import load_network_weights
from legato.pipelines.text import TextEncoder
from legato.pipelines.training import stage_items, stage_objective
from legato.recipes.catalog import TEXT_DIM
from legato.recipes.datasets import Dataset, load
from legato.recipes.datasets.video import MOTIONS, SPEEDS, SUBJECTS, speed_of, time_reversed
from legato.recipes.networks import video_cascade
from legato.recipes.probes import motion_probe
from legato.recipes.train import matching
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
    parser.add_argument(
        "--steps", type=int, default=600,
        help="training steps; 0 reads out the --init run as it is (e.g. a legato train run's <runs>/base)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "no"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--photo", choices=sorted(SUBJECTS), help="train on this photo's clips only")
    parser.add_argument(
        "--motions", help='train on these motions only, comma-separated ("pan left,pan right")'
    )
    parser.add_argument("--speed", choices=sorted(SPEEDS), help="train on this speed's clips only")
    parser.add_argument(
        "--clips-per-caption", type=int, default=None,
        help="train on the first K clips of each caption only (with the filters above: an overfitting check)",
    )  # fmt: skip
    parser.add_argument(
        "--levels", default="200,400,600,800,950",
        help="noise levels of the caption-loss readout (motion_probe, level by level); empty: skip it",
    )  # fmt: skip
    parser.add_argument(
        "--init", help="start from another run folder's trained base (its model/): a curriculum, e.g. one "
        "photo's pans first, then every photo's; the architecture flags must match that run's",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds per (photo, speed) pan pair")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument(
        "--threshold", type=float, default=None, help="pixels a frame (default: base size / 64)"
    )
    args = parser.parse_args()
    args.threshold = args.threshold if args.threshold is not None else args.base_size / 64
    if args.steps < 0 or (args.steps == 0 and not args.init):
        parser.error(f"--steps {args.steps}: train a positive number of steps, or 0 with --init RUN to "
                     "read out that run as it is")  # fmt: skip

    data = load(args.data)
    train = data.split(held_out=False)
    train = restrict(train + time_reversed(train), args, parser)
    size = 2 * args.base_size  # this cascade's final size, from the dataset's 64x64

    def to_size(clips: Dataset) -> Dataset:  # the dataset's 64x64 frames brought to this cascade's size
        pooled = F.avg_pool3d(clips.samples, (1, 64 // size, 64 // size)) if size < 64 else clips.samples
        return replace(clips, samples=pooled)

    train = to_size(train)
    cascade = video_cascade(
        frames=16, size=size, text_dim=TEXT_DIM, channels=tuple(int(c) for c in args.channels.split(",")),
        steps=(32, 8, 8), guidance_scale=args.guidance, pooled_text=args.pooled_text,
        frame_correlation=args.frame_correlation,
    )  # fmt: skip
    stage = cascade.stages[0]
    network = stage.denoiser.network
    print(f"base: {sum(p.numel() for p in network.parameters()) / 1e6:.2f} M parameters, "
          f"{len(train.samples)} clips", flush=True)  # fmt: skip
    if args.init:
        try:
            load_network_weights(network, Path(args.init) / "model")
        except (FileNotFoundError, RuntimeError) as error:
            parser.error(f"--init {args.init}: {error}".splitlines()[0] + " (train that run first, with the "
                         "same --channels, --base-size and --pooled-text)")  # fmt: skip
    started = time.time()
    if args.steps:
        config = TrainConfig(
            steps=args.steps, batch_size=args.batch_size, learning_rate=3e-4, cond_dropout=0.1,
            ema_decay=0.99, lr_schedule="cosine", warmup_steps=min(200, args.steps // 10),
            checkpoint_every=100, log_every=50, progress=False, seed=0, mixed_precision=args.precision,
        )  # fmt: skip
        trainer = Trainer(network, VPSchedule.from_scheduler(stage.scheduler), stage_objective(stage),
                          stage_items(cascade, 0, train.samples, train.text), config, Path(args.runs),
                          device=args.device)  # fmt: skip
        trainer.fit()
        trainer.export()  # runs/model: what another run's --init starts from
        network = trainer.trained_network()
    trained = network.float().eval()  # the stage's .to below puts it on the device
    train_seconds = time.time() - started
    base = Cascade(
        (replace(stage, denoiser=Denoiser(trained, stage.denoiser.output_type)).to(args.device),)
    ).with_sampling(None, None, "dpm++")

    result = {
        "pooled_text": args.pooled_text,
        "frame_correlation": args.frame_correlation,
        "guidance": args.guidance,
        "init": args.init,
        "parameters_M": sum(p.numel() for p in trained.parameters()) / 1e6,
        "train_seconds": round(train_seconds),
        # (photo, speed) pairs whose left and right pans are both training captions
        **pan_readout(base, cascade, train, pan_pairs(train), args),
    }
    # held-out pans (a photo's pan one way is held out; its other way is a training caption): does the
    # direction carry over to a photo the model never saw panned that way?
    held = restrict(
        data.split(held_out=True),
        argparse.Namespace(**{**vars(args), "clips_per_caption": None}),
        None,
    )
    if held is not None:
        pool = train + to_size(held)
        pairs = [(a, b) for a, b in pan_pairs(pool) if max(a, b) >= len(train.captions)]
        if pairs:
            result["held out"] = pan_readout(base, cascade, pool, pairs, args)
    if (
        args.levels
    ):  # which noise levels the caption (own, opposite direction, another motion, none) matters at
        probed, encoder = Cascade((base.stages[0], *cascade.stages[1:])), TextEncoder()
        result["caption loss by level"] = {
            level: motion_probe(probed, train, encoder, items=min(40, len(train.captions)), levels=(level,))
            for level in map(int, args.levels.split(","))
        }
    Path(args.runs).mkdir(parents=True, exist_ok=True)  # --steps 0 trains nothing into it
    (Path(args.runs) / f"result-guidance-{args.guidance:g}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def pan_pairs(clips: Dataset) -> list[tuple[int, int]]:
    """(pan left row, pan right row): the first clip of each (photo, speed) whose two pans are both here."""
    motions = [MOTIONS[int(m)] for m in clips.labels["motion"]]
    first: dict[tuple, int] = {}
    for i, key in enumerate(
        zip(clips.labels["subject"].tolist(), map(speed_of, clips.captions), motions, strict=True)
    ):
        first.setdefault(key, i)
    return sorted(
        (first[(s, v, "pan left")], first[(s, v, "pan right")])
        for (s, v, m) in first
        if m == "pan left" and (s, v, "pan right") in first
    )


def pan_readout(
    base: Cascade, cascade: Cascade, clips: Dataset, pairs: list[tuple[int, int]], args: argparse.Namespace
) -> dict:
    """Sample each pair's left and right captions from the same ``args.seeds`` noises; measure the samples
    and the pairs' real clips (at the base stage's frames and size) with `horizontal_drift`."""
    work, way = [], []
    for k, (left, right) in enumerate(pairs):
        for seed in range(args.seeds):
            for row, sign in ((left, 1.0), (right, -1.0)):  # pan left: the content moves right (+)
                work.append(
                    Item(f"{k:02d}-{seed}-{row}", 1000 * k + seed, Conditioning(text=clips.text[row]))
                )
                way.append(sign)
    way = torch.tensor(way, dtype=torch.double)
    with torch.no_grad():
        generated = torch.stack(LocalExecutor().run(base, work)).cpu()
    drift = horizontal_drift((generated + 1) / 2)
    rows = [int(item.id.rsplit("-", 1)[1]) for item in work]
    real_clips = cascade.downsample(0, clips.samples[rows])  # the base stage's frames and size, as sampled
    real = horizontal_drift((real_clips + 1) / 2)
    readout = {"pairs": len(work) // 2}
    for name, clip, along in (("real", real_clips, real * way), ("generated", generated, drift * way)):
        readout[name] = {
            "right way": (along > args.threshold).double().mean().item(),
            "px per frame": along.mean().item(),
            "mean |px|": along.abs().mean().item(),
            # mean absolute change between consecutive frames, in [0, 1] pixel units: still or boiling?
            "frame change": ((clip[:, :, 1:] - clip[:, :, :-1]).abs().mean() / 2).item(),
        }
    # the same noise, left then right caption: does the left caption's content move further right?
    readout["caption picks the side"] = (drift[0::2] > drift[1::2]).double().mean().item()
    readout["left minus right, px"] = (drift[0::2] - drift[1::2]).mean().item()
    return readout


def restrict(
    train: Dataset, args: argparse.Namespace, parser: argparse.ArgumentParser | None
) -> Dataset | None:
    """The clips the filters keep: ``--photo``, ``--motions``, ``--speed``, then ``--clips-per-caption``;
    none kept is an error with a ``parser``, else None."""
    subjects = train.meta["attributes"]["subject"]
    wanted = args.motions.split(",") if args.motions else MOTIONS
    if unknown := [m for m in wanted if m not in MOTIONS]:
        parser.error(
            f"--motions {args.motions!r}: {unknown} are not motions; use some of {', '.join(MOTIONS)}"
        )
    rows = [
        i
        for i, text in enumerate(train.captions)
        if (not args.photo or subjects[int(train.labels["subject"][i])] == args.photo)
        and MOTIONS[int(train.labels["motion"][i])] in wanted
        and args.speed in (None, speed_of(text))
    ]
    if not rows and parser is None:
        return None
    if not rows:
        parser.error(
            f"no training clip is of --photo {args.photo} --motions {args.motions} --speed {args.speed}"
        )
    return matching(train.subset(rows), None, args.clips_per_caption)


if __name__ == "__main__":
    main()
