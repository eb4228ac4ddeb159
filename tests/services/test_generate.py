"""``legato generate``: prompts in, real media files and a resumable manifest out, read back through av."""

import json
from pathlib import Path

import av

from legato.pipelines.job_spec import item_id

from .conftest import invoke, legato


def probe(path: Path) -> dict:
    """What a media file really holds: each stream's kind, rate, size, decoded samples or frames."""
    found = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            rate = stream.rate if stream.type == "audio" else stream.average_rate
            found[stream.type] = {"rate": rate, "count": 0, "size": None, "channels": None}
        for frame in container.decode(*container.streams):
            info = found["audio" if isinstance(frame, av.AudioFrame) else "video"]
            if isinstance(frame, av.AudioFrame):
                info["count"] += frame.samples
                info["channels"] = len(frame.layout.channels)
            else:
                info["count"] += 1
                info["size"] = (frame.height, frame.width)
    return found


def test_item_ids_are_file_names_that_change_with_prompt_seed_and_duration():
    a = item_id("A jig, on fiddle!", 1, None)
    assert a.startswith("a-jig-on-fiddle-s1-")
    assert len({a, item_id("a jig on fiddle", 1, None), item_id("A jig, on fiddle!", 2, None),
                item_id("A jig, on fiddle!", 1, 2.0)}) == 4  # fmt: skip
    assert item_id("¡¿!", 0, None).startswith("item-s0-")


def test_generate_music_writes_audio_and_spectrograms_and_a_rerun_skips_them(tmp_path, cli_env):
    out = tmp_path / "clips"
    args = ["generate", "music", "a jig on fiddle", "a low drone", "--seed", "3", "--seed", "4",
            "--duration", "1.5", "-m", "music-tiny", "-f", "wav", "-f", "flac", "-f", "png", "-o", str(out)]  # fmt: skip
    first = legato(*args, env=cli_env)
    assert first.code == 0, first.stderr
    assert "4 written, 0 already there, 0 failed" in first.stdout
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted((r["prompt"], r["seed"]) for r in rows) == [
        ("a jig on fiddle", 3), ("a jig on fiddle", 4), ("a low drone", 3), ("a low drone", 4)
    ]  # fmt: skip
    for row in rows:
        for suffix in ("wav", "flac"):
            audio = probe(out / f"{row['id']}.{suffix}")["audio"]
            assert (audio["rate"], audio["channels"]) == (44_100, 2)  # mastered by default
            assert audio["count"] == 66_150  # 1.5 s: two windows of the 1.02 s model, continued
        image = probe(out / f"{row['id']}.png")["video"]
        assert image["size"] == (32, 94)  # 32 mel bands x the frames of 1.5 s at a 256-sample hop
    again = invoke(*args, "--json", env=cli_env)
    assert again.code == 0, again.stderr
    summary = again.json()
    assert summary["written"] == []
    assert sorted(summary["skipped"]) == sorted(r["id"] for r in rows)
    assert all(Path(f).is_file() for item in summary["items"] for f in item["files"])


def test_generate_music_on_another_scheduler_records_it_and_never_mixes(tmp_path, cli_env):
    out = tmp_path / "dpm"
    args = [
        "generate",
        "music",
        "a jig on fiddle",
        "-m",
        "music-tiny",
        "--steps",
        "3",
        "-f",
        "wav",
        "-o",
        str(out),
    ]
    result = invoke(*args, "--scheduler", "dpm++", "--json", env=cli_env)
    assert result.code == 0, result.stderr
    (item,) = result.json()["items"]
    assert probe(Path(item["files"][0]))["audio"]["count"] > 0
    (row,) = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert "+steps=3,3+scheduler=dpm++" in row["model"]
    mixed = invoke(*args, env=cli_env)  # the model's own scheduler into the same folder
    assert mixed.code == 2
    assert "use a new output folder" in mixed.stderr


def test_generate_video_longer_than_the_models_window(tmp_path, cli_env):
    out = tmp_path / "long"
    result = invoke("generate", "video", "a camera move over a photo", "-m", "video-tiny", "--frames", "13",
                    "--steps", "1", "-o", str(out), "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    (item,) = result.json()["items"]
    assert probe(Path(item["files"][0]))["video"]["count"] == 13
    assert item["id"] == item_id("a camera move over a photo", 0, 13)  # the length is part of the name


def test_generate_video_with_a_soundtrack_and_fewer_steps(tmp_path, cli_env):
    out = tmp_path / "videos"
    result = legato("generate", "video", "a camera move over a photo", "-m", "video-tiny", "--soundtrack", "music-tiny",
                    "--steps", "1", "--guidance", "2", "-f", "mp4", "-f", "webm", "-o", str(out), "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    summary = result.json()
    (item,) = summary["items"]
    for file in item["files"]:
        streams = probe(Path(file))
        assert streams["video"]["count"] == 8
        assert streams["video"]["size"] == (16, 16)
        assert (
            abs(streams["audio"]["count"] / streams["audio"]["rate"] - 1.0) < 0.1
        )  # as long as the video (+ AAC padding)
        rate = 48_000 if file.endswith(".webm") else 44_100  # Opus runs at 48 kHz
        assert (streams["audio"]["rate"], streams["audio"]["channels"]) == (rate, 2)  # a mastered soundtrack
    (row,) = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert "+steps=1,1,1+guidance=2+master=" in row["model"]  # the settings are part of the record
    # A folder made with other settings is refused, not mixed.
    mixed = invoke("generate", "video", "another prompt", "-m", "video-tiny", "-o", str(out), env=cli_env)
    assert mixed.code == 2
    assert "use a new output folder" in mixed.stderr


def test_json_of_a_failed_input_is_an_error_object(tmp_path, cli_env):
    result = legato("generate", "music", "x", "-m", "video-tiny", "--json", cwd=tmp_path, env=cli_env)
    assert result.code == 2
    assert result.json() == {
        "ok": False,
        "error": result.stderr.strip().removeprefix("error: "),
        "exit_code": 2,
    }
    assert "is a video model, not a music one" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
