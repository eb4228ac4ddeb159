"""``python -m legato.pipelines.datasets {music,video} FOLDER [--seed N] [--small] [--more-photos]``: build a
dataset."""

from __future__ import annotations

import argparse
import time

from legato.codec import SMALL
from legato.pipelines.datasets import save
from legato.pipelines.datasets.music import build_music
from legato.pipelines.datasets.video import build_video
from legato.pipelines.text import DEFAULT_TEXT_ENCODER


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m legato.pipelines.datasets", description=__doc__)
    parser.add_argument("kind", choices=("music", "video"))
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="a few items per class, for tests")
    parser.add_argument(
        "--more-photos",
        action="store_true",
        help="video: training-only clips over other photos than the verifier's (bundled train --more-data)",
    )
    parser.add_argument(
        "--text-encoder",
        default=DEFAULT_TEXT_ENCODER,
        help="'none': keep the folder's caption embeddings (same captions; no encoder needed)",
    )
    args = parser.parse_args(argv)
    if args.more_photos and args.kind != "video":
        parser.error(f"--more-photos builds video clips; drop it for {args.kind}")
    started = time.time()
    if args.kind == "music":
        data = build_music(SMALL, window=256, per_style=4 if args.small else 240, seed=args.seed)
    else:
        data = build_video(frames=16, size=64, clips_per_pair=2 if args.small else 40, seed=args.seed,
                           more_photos=args.more_photos)  # fmt: skip
    save(data, args.folder, None if args.text_encoder == "none" else args.text_encoder)
    print(f"{args.kind}: {len(data['held_out'])} items ({int(data['held_out'].sum())} held out), "
          f"{len(data['captions'])} captions -> {args.folder} in {time.time() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
