"""``legato batch``, ``demo``, ``gallery`` and ``models``: job specs run, resumed and shown."""

import json

import pytest
import yaml

from legato.pipelines.job_spec import item_id

from .conftest import invoke, legato
from .test_generate import probe


def write_spec(path, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(fields))
    return path


def test_batch_runs_a_spec_resumes_it_and_takes_overrides(tmp_path, cli_env):
    items = [{"prompt": "a jig", "seed": 1, "id": "jig"}, {"prompt": "a drone", "seed": 2, "duration": 1.5}]
    spec = write_spec(tmp_path / "job.yaml", kind="music", model="music-tiny", output="out/jigs", items=items,
                      formats=["wav"])  # fmt: skip
    first = legato("batch", "job.yaml", "--gallery", cwd=tmp_path, env=cli_env)  # relative paths: from here
    assert first.code == 0, first.stderr
    assert "2 written, 0 already there, 0 failed" in first.stdout
    # one window: 64 frames at a 256-sample hop at 16 kHz, mastered to 44.1 kHz
    assert probe(tmp_path / "out/jigs/jig.wav")["audio"]["count"] == round(63 * 256 * 44_100 / 16_000)
    drone = item_id("a drone", 2, 1.5)  # an item without an id is named by its prompt, seed and length
    assert probe(tmp_path / f"out/jigs/{drone}.wav")["audio"]["count"] == 66_150
    page = (tmp_path / "out" / "index.html").read_text()
    assert "jigs/jig.wav" in page
    # killed after the first item: a re-run writes only what is missing
    manifest = tmp_path / "out/jigs/manifest.jsonl"
    manifest.write_text(manifest.read_text().splitlines()[0] + "\n")
    again = invoke("batch", str(spec), "--output", str(tmp_path / "out/jigs"), "--json", env=cli_env)
    assert again.code == 0, again.stderr
    summary = again.json()
    assert (summary["written"], summary["skipped"]) == ([drone], ["jig"])
    # an override is validated like the spec itself
    bad = invoke("batch", str(spec), "--executor", "ray-data", "--model", "video-tiny", env=cli_env)
    assert bad.code == 2
    assert "is a video model" in bad.stderr
    placed = invoke("batch", str(spec), "--gpus", "2", env=cli_env)  # GPUs to place Ray actors on: not local
    assert placed.code == 2
    assert "with executor ray or ray-data" in placed.stderr


def test_demo_runs_the_main_job_specs_and_writes_the_gallery(tmp_path, models):
    root = tmp_path / "checkout"
    write_spec(root / "jobs/main-music.yaml", kind="music", model="models/music-tiny", output="outputs/music",
               items=[{"prompt": "a reel", "seed": 1, "id": "reel"}])  # fmt: skip
    write_spec(root / "jobs/main-video.yaml", kind="video", model="models/video-tiny", output="outputs/video",
               soundtrack="models/music-tiny", items=[{"prompt": "a zoom", "seed": 2, "id": "zoom"}])  # fmt: skip
    (root / "models").symlink_to(models)
    result = invoke("demo", "--root", str(root), "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert [len(job["written"]) for job in summary["jobs"]] == [1, 1]
    assert summary["gallery"] == str((root / "outputs/index.html").resolve())
    streams = probe(root / "outputs/video/zoom.mp4")
    assert set(streams) == {"video", "audio"}  # the video has its soundtrack
    page = (root / "outputs/index.html").read_text()
    assert "music/reel.wav" in page
    assert "video/zoom.mp4" in page
    assert invoke("gallery", str(root / "outputs")).code == 0


def test_models_lists_the_folders_cascades_from_their_files(tmp_path, models, cli_env):
    result = legato("models", "--json", cwd=tmp_path, env=cli_env)
    assert result.code == 0, result.stderr
    found = {m["name"]: m for m in result.json()["models"]}
    assert {"music-tiny", "video-tiny"} <= set(found)
    music = found["music-tiny"]
    assert music["kind"] == "music"
    assert [s["name"] for s in music["stages"]] == ["base", "sr"]
    assert music["stages"][0]["shape"] == [1, 16, 32]
    assert music["summary"] == "An untrained music cascade for tests."
    assert found["video-tiny"]["fps"] == 8.0
    # a folder given with --path, and a table for people
    other = tmp_path / "more"
    (other / "mine").mkdir(parents=True)
    (other / "mine" / "cascade.json").write_text((models / "music-tiny" / "cascade.json").read_text())
    table = invoke("models", "--path", str(other), env=cli_env)
    assert table.code == 0
    assert "mine" in table.stdout
    assert "base 1x16x32 (2 steps, guidance 3)" in table.stdout
    assert (
        json.loads(invoke("models", "--path", str(other), "--json", env=cli_env).stdout)["models"][0]["name"]
        == "mine"
    )


def test_every_entry_point_takes_a_model_name(tmp_path, models, monkeypatch):
    """One resolver of model names: the API and a spec run by the API take `music-tiny` as the command does."""
    from legato.pipelines import JobSpec, MusicPipeline, VideoPipeline, run_job

    monkeypatch.setenv("LEGATO_MODELS", str(models))
    assert MusicPipeline.from_pretrained("music-tiny").window == 64
    assert VideoPipeline.from_pretrained("video-tiny", soundtrack="music-tiny").soundtrack is not None
    spec = JobSpec.model_validate({"kind": "music", "model": "music-tiny", "output": str(tmp_path / "out"),
                                   "formats": ["wav"], "items": [{"prompt": "a jig"}]})  # fmt: skip
    assert len(run_job(spec).written) == 1
    with pytest.raises(ValueError, match="is a video model, not a music one"):
        MusicPipeline.from_pretrained("video-tiny")
