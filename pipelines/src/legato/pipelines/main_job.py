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
    parser.add_argument(
        "--output", default="outputs",
        help="where everything goes: each spec's output folder is placed under it by its last name "
        "(outputs/music -> OUTPUT/music), and the gallery over them",
    )  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    specs = [JobSpec.from_file(path) for path in args.specs]  # every spec checked before any work
    folders = [Path(args.output) / Path(spec.output).name for spec in specs]
    if len(set(folders)) < len(folders):
        parser.error(
            f"the specs' output folders {[spec.output for spec in specs]} share a last name, so under "
            f"--output {args.output} they would write into one folder; give each job its own folder name"
        )
    for path, spec, folder in zip(args.specs, specs, folders, strict=True):
        spec = spec.model_copy(update={"output": str(folder)})
        result = run_job(spec, log=lambda line: print(line, flush=True))
        print(f"{path}: {len(result.written)} written, {len(result.skipped)} already there, "
              f"{result.seconds:.0f} s -> {result.output}", flush=True)  # fmt: skip
    page = write_gallery(args.output)
    print(f"\ndone in {time.perf_counter() - started:.0f} s; open {Path(page).resolve()}")


if __name__ == "__main__":
    main()
