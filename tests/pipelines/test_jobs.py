"""Batch jobs from spec files, through every executor, with the manifest; a killed job resumes cleanly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from legato.codec import load_mel_image, read_audio, spectral_convergence
from legato.pipelines.jobs import MANIFEST, JobSpec, read_manifest, run_job
from legato.video import read_video

from .conftest import MUSIC_PROMPTS, torch_threads


def music_spec(model, output, executor="local", count=4, **extra) -> JobSpec:
    items = [{"prompt": MUSIC_PROMPTS[i % 2], "seed": 10 + i} for i in range(count)]
    items[0]["duration"] = 2.0  # a continuation: two windows
    return JobSpec.model_validate(
        {"kind": "music", "model": str(model), "output": str(output), "executor": executor, "items": items,
         "formats": ["wav", "png"], **extra}
    )  # fmt: skip


def test_spec_errors_name_the_field_and_the_fix(tmp_path, music_model):
    bad = {"kind": "music", "model": str(music_model), "output": "out", "items": [{"prompt": "x"}]}
    path = tmp_path / "job.yaml"
    for change, match in [
        ({"colour": "red"}, "colour"),
        ({"formats": ["mp4"]}, r"formats \['mp4'\] are not music formats"),
        ({"items": [{"prompt": "x", "id": "a"}, {"prompt": "y", "id": "a"}]}, r"item ids \['a'\]"),
        ({"items": [{"prompt": "x", "duration": -1}]}, "duration"),
        ({"items": []}, "items"),
    ]:
        path.write_text(yaml.safe_dump({**bad, **change}))
        with pytest.raises(ValueError, match=match):
            JobSpec.from_file(path)
    path.write_text("kind: [music")
    with pytest.raises(ValueError, match="does not parse"):
        JobSpec.from_file(path)


def test_music_job_writes_files_and_manifest_and_a_rerun_skips_everything(music_model, tmp_path):
    spec = music_spec(music_model, tmp_path / "out")
    path = tmp_path / "job.json"
    path.write_text(spec.model_dump_json())
    first = run_job(JobSpec.from_file(path))
    assert first.written == spec.item_ids
    ids = spec.item_ids
    rows = read_manifest(tmp_path / "out")
    assert [r["id"] for r in rows] == first.written
    assert {"seed", "prompt", "model", "item", "files", "checks", "timings"} <= set(rows[0])
    audio, rate = read_audio(tmp_path / "out" / f"{ids[0]}.wav")
    assert audio.shape[-1] == 2 * rate  # the 2 s item
    assert load_mel_image(tmp_path / "out" / f"{ids[1]}.png").unit.shape[-2:] == (32, 64)
    before = (tmp_path / "out" / MANIFEST).read_text()
    again = run_job(JobSpec.from_file(path))
    assert (again.written, again.skipped) == ([], first.written)
    assert (tmp_path / "out" / MANIFEST).read_text() == before


@pytest.mark.parametrize(
    "executor",
    [
        "ray-data",
        # 20 s of the default suite's budget: RayExecutor's byte-equality with the local run is checked by
        # test_ray_executor.py and its jobs by the video-with-soundtrack job below
        pytest.param("ray", marks=pytest.mark.slow),
    ],
)
def test_the_same_music_job_gives_the_same_files_through_every_executor(
    executor, music_model, tmp_path, ray_cluster
):
    files = {}
    for name in ("local", executor):
        # threads: every stage's torch threads, this process's and each actor's: equal counts, equal bytes
        run_job(music_spec(music_model, tmp_path / name, name, count=3, threads=1))
        files[name] = {p.name: p for p in (tmp_path / name).iterdir() if p.suffix in (".wav", ".png")}
    assert sorted(files["local"]) == sorted(files[executor])
    for name, local in files["local"].items():
        other = files[executor][name]
        if executor == "ray":
            assert local.read_bytes() == other.read_bytes(), name  # same batches: byte-equal files
        elif name.endswith(".png"):
            a, b = (load_mel_image(f).unit for f in (local, other))
            assert (a - b).abs().max() <= 1 / 255, (executor, name)
        else:  # Griffin-Lim moves samples far on a 1e-6 mel change; their spectra stay equal
            a, b = (read_audio(f)[0] for f in (local, other))
            assert spectral_convergence(a, b).max() < -30, (executor, name)  # each channel
    # Item 00000 is a two-window continuation, byte-equal too since loaded weights get their own aligned
    # memory (`legato.cascade.pretrained._own_storage`; before, it differed by one float32 ulp between a
    # Ray actor and this process). Ray Data forms its own batches: within float rounding of the mel.


def test_video_job_with_a_soundtrack_gives_the_same_files_on_ray(
    video_model, music_model, tmp_path, ray_cluster
):
    files = {}
    for executor in ("local", "ray"):
        spec = JobSpec.model_validate(
            {"kind": "video", "model": str(video_model), "soundtrack": str(music_model),
             "output": str(tmp_path / executor), "executor": executor,
             "items": [{"prompt": "a camera move over a photo", "seed": s} for s in (1, 2)]}
        )  # fmt: skip
        with torch_threads(1):
            assert run_job(spec).written == spec.item_ids
        files[executor] = tmp_path / executor / f"{spec.item_ids[0]}.mp4"
    video = read_video(files["local"])
    assert video.frames.shape == (8, 3, 16, 16)
    assert video.audio is not None
    assert abs(video.audio.shape[-1] / video.sample_rate - 1.0) < 0.1  # 8 frames at 8 fps
    assert not torch.equal(video.frames[0], video.frames[-1])
    assert files["local"].read_bytes() == files["ray"].read_bytes()


def test_a_killed_job_resumes_with_no_item_missing_twice_or_partial(music_model, tmp_path):
    out = tmp_path / "out"
    spec = music_spec(music_model, out, count=12, chunk=2)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    legato = Path(sys.executable).parent / "legato"  # the installed command, as a user runs the job
    proc = subprocess.Popen([str(legato), "batch", str(path), "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while len(read_manifest(out)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the job ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    finished = [r["id"] for r in read_manifest(out)]
    assert 3 <= len(finished) < 12
    result = run_job(JobSpec.from_file(path))
    assert set(result.skipped) == set(finished)
    rows = read_manifest(out)
    ids = [r["id"] for r in rows]
    assert sorted(ids) == sorted(spec.item_ids)  # every item, once
    assert not list(out.glob(".*.part"))  # no temporary file left behind
    for row in rows:
        for name in row["files"]:
            file = out / name
            if name.endswith(".wav"):
                audio, _ = read_audio(file)
                assert audio.shape[-1] > 0
            else:
                assert load_mel_image(file).unit.shape[-2] == 32
    assert json.loads((out / MANIFEST).read_text().splitlines()[-1])["id"] in spec.item_ids
