"""The main job: music clips and a video with a soundtrack from the bundled models, and an HTML gallery.

    python -m legato.pipelines.main_job                   # jobs/main-*.yaml -> outputs/, outputs/index.html

Runs each job spec (resumable: a second run skips what is done), then writes ``index.html`` over the
output folder, and prints where everything is and how long it took.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from legato.pipelines.gallery import write_gallery
from legato.pipelines.jobs import JobSpec, run_job

SPECS = ("jobs/main-music.yaml", "jobs/main-video.yaml")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m legato.pipelines.main_job", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("specs", nargs="*", default=list(SPECS))
    parser.add_argument("--output", default="outputs", help="the gallery's folder (the specs' parent)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    for path in args.specs:
        spec = JobSpec.from_file(path)
        result = run_job(spec, log=lambda line: print(line, flush=True))
        print(f"{path}: {len(result.written)} written, {len(result.skipped)} already there, "
              f"{result.seconds:.0f} s -> {result.output}", flush=True)  # fmt: skip
    page = write_gallery(args.output)
    print(f"\ndone in {time.perf_counter() - started:.0f} s; open {Path(page).resolve()}")


if __name__ == "__main__":
    main()
