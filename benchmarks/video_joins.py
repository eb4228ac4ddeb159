"""How smooth a continued video is at its joins: the frame difference where each window starts its own
frames, against the clip's other frame differences, the old continuation against today's.

    .venv/bin/python benchmarks/video_joins.py                 # video-fast, 3 prompts x 40 frames, ~3 min on a CPU
    .venv/bin/python benchmarks/video_joins.py --frames 24 --prompts "fast pan right over an astronaut"

"before": the windows continue the last quarter of the one before, kept by replacement only (the sampler
pastes the noised prefix in at every step), every window's last frames included. "after": what
`VideoPipeline` does now: the base stage's reconstruction guidance on continued windows and the prefix
taken before the frames past the last base frame (`legato.pipelines.continuation.aligned_trim`).

A frame difference is the mean absolute difference of consecutive frames in 8-bit levels; a join's is the
largest over the transitions into and through the kept overlap; "p90" is the 90th percentile of the clip's
other transitions. Printed per clip: the joins, p90, and the largest join over p90.
"""

from __future__ import annotations

import argparse
import time

import torch

from legato.pipelines import VideoPipeline
from legato.pipelines.continuation import aligned_trim, continue_windows, overlap_positions

PROMPTS = ["fast pan right over an astronaut", "slow zoom into a cat", "fast pan left over a coffee cup"]


def frame_differences(video: torch.Tensor) -> torch.Tensor:
    """``(C, T, H, W)`` in [0, 1] -> the ``T - 1`` mean absolute differences of consecutive 8-bit frames."""
    frames = (video.clamp(0, 1) * 255).round()
    return (frames[:, 1:] - frames[:, :-1]).abs().mean(dim=(0, 2, 3))


def joins(differences: torch.Tensor, window: int, keep: int, trim: int) -> tuple[list[float], float]:
    """Each join's largest difference, and the 90th percentile of the differences away from the joins."""
    hop, total = window - keep - trim, differences.shape[0] + 1
    near = torch.zeros_like(differences, dtype=torch.bool)
    found, start = [], hop
    while start < total - keep:
        at = list(range(start, min(start + keep, total - 1)))  # transitions into start + 1 .. start + keep
        near[at] = True
        found.append(float(differences[at].max()))
        start += hop
    return found, float(differences[~near].quantile(0.9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="video-fast")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--prompts", nargs="+", default=PROMPTS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = VideoPipeline.from_pretrained(args.model)
    keep, window = overlap_positions(pipe.cascade, None), pipe.frames
    for seed, prompt in enumerate(args.prompts):
        for name in ("before", "after"):
            started = time.perf_counter()
            if name == "before":
                (video,) = continue_windows(
                    pipe.executor, pipe.cascade, pipe.items([prompt], [seed]), args.frames, keep
                )
                video, trim = (video + 1) / 2, 0
            else:
                video, trim = (
                    pipe(prompt, seeds=seed, frames=args.frames)[0].frames,
                    aligned_trim(pipe.cascade),
                )
            found, p90 = joins(frame_differences(video), window, keep, trim)
            print(f"{prompt!r} seed {seed} {name:6s}: joins {[round(j, 1) for j in found]}, p90 {p90:.1f}, "
                  f"largest / p90 {max(found) / p90:.2f} ({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
