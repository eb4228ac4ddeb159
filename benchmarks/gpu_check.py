"""Every GPU figure in one run: the benchmarks a GPU machine should answer, each in its own process with its
own time limit, written as a JSON and a markdown table.

    python3 benchmarks/gpu_check.py --out OUT                  # on a GPU machine (scripts/gpu-check there)
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick --out /tmp/check   # its logic, on a CPU

The checks (`CHECKS`): the sampling loop against diffusers' pipeline (float32, and bfloat16 with
torch.compile); UNet3D against diffusers' UNet3DConditionModel; the bundled cascades' generation speed
(`generate.py --untrained`: the same networks, no weights needed), eagerly and with compiled steps; a 3-stage
cascade's overlap on Ray with the stages' actors in fractions of the one GPU, against `LocalExecutor` on it;
the planner on an unbalanced cascade, and the simulator beside it; how tensors travel between stages; the
codec against librosa; the planner's scaling table from the stage costs measured on the GPU. Their limits
add up to at most 9 minutes (``--budget``); a check that runs out of time is recorded as such and the run
goes on. ``--quick`` runs each at the smallest sizes that still exercise it (the CPU test of this script).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Check:
    name: str
    what: str
    script: str
    gpu: tuple[str, ...]  # arguments on a GPU (besides --device)
    quick: tuple[str, ...]  # arguments at the smallest sizes
    seconds: int  # its share of the budget
    needs: tuple[str, ...] = ()  # modules it imports beyond torch and Legato's own

    @property
    def compiles(self) -> bool:
        return "--compile" in self.gpu


CHECKS = (
    Check("sampler", "sampling loop vs diffusers, float32", "sampler.py", (), ("--batch", "1", "--steps", "3", "--repeats", "1"), 30, ("diffusers",)),
    Check("sampler-bf16-compile", "sampling loop vs diffusers, bfloat16, torch.compile", "sampler.py",
          ("--dtype", "bfloat16", "--compile"), ("--batch", "1", "--steps", "3", "--repeats", "1"), 75, ("diffusers",)),
    Check("unet3d", "UNet3D vs diffusers' UNet3DConditionModel", "video.py", ("--bf16",),
          ("--batch", "1", "--frames", "2", "--size", "16", "--steps", "1", "--repeats", "1"), 45, ("diffusers",)),
    Check("generate", "bundled cascades, eager", "generate.py", ("--untrained", "--dtype", "bfloat16", "--items", "16"),
          ("--untrained", "--items", "1", "--kinds", "video"), 60, ("diffusers",)),
    Check("generate-compiled", "bundled cascades, compiled steps (reduce-overhead)", "generate.py",
          ("--untrained", "--dtype", "bfloat16", "--items", "16", "--compile", "reduce-overhead"),
          ("--untrained", "--items", "1", "--kinds", "video"), 100, ("diffusers",)),
    Check("cascade-ray", "3 stages on Ray, fractions of the GPU, vs LocalExecutor", "cascade_ray.py",
          ("--stages", "3", "--items", "48", "--repeats", "2"),
          ("--stages", "3", "--items", "4", "--repeats", "1", "--base-steps", "2", "--sr-steps", "2"), 80, ("ray", "diffusers")),
    Check("placement", "planner vs even split on an unbalanced cascade; simulator", "placement.py",
          ("--cpus", "8", "--items", "32"), ("--items", "4", "--steps", "1,1,2"), 60, ("ray", "diffusers")),
    Check("transfer", "hand-over between stages, local and on Ray", "transfer.py", (),
          ("--sizes", "0.1", "--repeats", "2"), 35, ("ray", "diffusers")),
    Check("codec", "mel + Griffin-Lim vs librosa", "codec.py", (), ("--clips", "2", "--seconds", "1", "--n-iter", "4"), 30, ("librosa",)),
    Check("scaling", "planner from 1 to 512 GPUs, costs measured here", "scaling.py", (), ("--batch", "1"), 25, ("diffusers",)),
)  # fmt: skip


def missing(check: Check) -> list[str]:
    import importlib.util

    return [m for m in check.needs if importlib.util.find_spec(m) is None]


def run(check: Check, device: str, quick: bool, limit: float) -> dict:
    """One check in its own process (a crash or a hang costs that check, not the run)."""
    command = [
        sys.executable,
        str(HERE / check.script),
        "--device",
        device,
        *(check.quick if quick else check.gpu),
    ]
    record = {
        "name": check.name,
        "what": check.what,
        "command": " ".join(["python", *command[1:]]).replace(str(HERE) + "/", "benchmarks/"),
    }
    if lacking := missing(check):
        return {
            **record,
            "status": f"skipped: {', '.join(lacking)} not installed",
            "seconds": 0.0,
            "output": "",
        }
    if quick and check.compiles and not device.startswith("cuda"):  # inductor on a CPU takes minutes
        return {**record, "status": "skipped: compiling on a CPU takes minutes", "seconds": 0.0, "output": ""}
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True, timeout=limit)
        status, output = (
            ("ok" if done.returncode == 0 else f"failed (exit {done.returncode})"),
            done.stdout + done.stderr,
        )
    except subprocess.TimeoutExpired as err:
        status, output = (
            f"timed out after {limit:.0f} s",
            (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or ""),
        )
    return {**record, "status": status, "seconds": round(time.perf_counter() - started, 1), "output": output}  # fmt: skip


def summary(output: str, lines: int = 8) -> list[str]:
    """The last lines of a check's output that carry results (no Ray or torch chatter)."""
    noise = ("INFO", "WARNING", "Warning", "warn(", "core_worker", "[20", "(raylet", "warnings.")
    kept = [line.rstrip() for line in output.splitlines()
            if line.strip() and not line.lstrip().startswith(noise) and not re.match(r"\d{4}-\d\d-\d\d ", line)]  # fmt: skip
    return kept[-lines:]


def markdown(report: dict) -> str:
    out = [f"# GPU check: {report['device']}", "",
           f"torch {report['torch']}, Python {report['python']}, {report['when']}; {report['seconds']:.0f} s in all "
           f"(budget {report['budget']:.0f} s){' (quick sizes)' if report['quick'] else ''}.", "",
           "| check | status | seconds | command |", "| --- | --- | --- | --- |"]  # fmt: skip
    for r in report["checks"]:
        out.append(f"| {r['name']}: {r['what']} | {r['status']} | {r['seconds']} | `{r['command']}` |")
    for r in report["checks"]:
        out += ["", f"## {r['name']}", "", "```", *summary(r["output"], 14), "```"]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu-check.json and gpu-check.md")
    parser.add_argument("--quick", action="store_true", help="the smallest sizes (a CPU test of the script)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for every check together")
    parser.add_argument("--only", help="comma-separated check names (default: all)")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda, but torch sees no GPU here; run with --device cpu to check the script")
    checks = [c for c in CHECKS if not args.only or c.name in args.only.split(",")]
    unknown = set(args.only.split(",")) - {c.name for c in CHECKS} if args.only else set()
    if unknown:
        sys.exit(f"--only names unknown checks {sorted(unknown)}; the checks: {[c.name for c in CHECKS]}")
    scale = min(1.0, args.budget / sum(c.seconds for c in checks))  # each check's share of the budget
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "CPU"
    report = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "budget": args.budget,
              "quick": args.quick, "checks": []}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for check in checks:
        left = args.budget - (time.perf_counter() - started)
        if left < 5:
            report["checks"].append({"name": check.name, "what": check.what, "command": "", "status": "not run: budget spent", "seconds": 0.0, "output": ""})  # fmt: skip
            continue
        record = run(
            check, args.device, args.quick, min(left, check.seconds * scale if not args.quick else left)
        )
        report["checks"].append(record)
        print(f"{check.name}: {record['status']} ({record['seconds']} s)", flush=True)
        report["seconds"] = time.perf_counter() - started
        (args.out / "gpu-check.json").write_text(
            json.dumps(report, indent=1)
        )  # kept as it goes: a cut run keeps its part
        (args.out / "gpu-check.md").write_text(markdown(report))
    report["seconds"] = time.perf_counter() - started
    (args.out / "gpu-check.json").write_text(json.dumps(report, indent=1))
    (args.out / "gpu-check.md").write_text(markdown(report))
    print(f"wrote {args.out / 'gpu-check.md'} and gpu-check.json in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
