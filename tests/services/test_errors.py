"""Bad input: exit code 2 and one ``error:`` line that names the problem, never a traceback."""

import pytest
import yaml

from .conftest import assert_clean_error, invoke, legato


@pytest.fixture
def files(tmp_path, models):
    (tmp_path / "not-audio.wav").write_text("this is text, not audio")
    spec = {
        "kind": "music",
        "model": "music-tiny",
        "output": str(tmp_path / "out"),
        "items": [{"prompt": "x"}],
    }
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**spec, "colour": "red"}))
    (tmp_path / "formats.yaml").write_text(yaml.safe_dump({**spec, "formats": ["mp4"]}))
    (tmp_path / "broken.yaml").write_text("kind: [music")
    (tmp_path / "video.yaml").write_text(yaml.safe_dump({**spec, "kind": "video"}))  # a music model
    return tmp_path


CASES = [
    (["generate", "music", "x", "-m", "nope"], "no model 'nope'"),
    (["generate", "music", "x", "-m", "video-tiny"], "is a video model, not a music one"),
    (["generate", "music", "x", "-m", "music-tiny", "-f", "mp4"], "formats ['mp4'] are not music formats"),
    (["generate", "music", "x", "-m", "music-tiny", "--steps", "1,2,3"], "one per stage ['base', 'sr']"),
    (["generate", "music", "x", "-m", "music-tiny", "--steps", "many"], "give whole numbers"),
    (
        ["generate", "music", "x", "-m", "music-tiny", "--scheduler", "lms"],
        "scheduler 'lms' is not one of ['ddim'",
    ),
    (["generate", "music", "  ", "-m", "music-tiny"], "a prompt is empty"),
    (
        ["generate", "video", "x", "-m", "video-tiny", "--soundtrack", "music-tiny", "-f", "gif"],
        "cannot carry",
    ),
    (["generate", "video", "x", "-m", "video-tiny", "--soundtrack", "video-tiny"], "not a music one"),
    (["batch", "{tmp}/missing.yaml"], "cannot read job spec"),
    (["batch", "{tmp}/typo.yaml"], "colour: Extra inputs are not permitted"),
    (["batch", "{tmp}/formats.yaml"], "formats ['mp4'] are not music formats"),
    (["batch", "{tmp}/broken.yaml"], "does not parse"),
    (["batch", "{tmp}/video.yaml"], "is a music model, not a video one"),
    (["edit", "music", "{tmp}/missing.wav", "x", "-m", "music-tiny"], "is not a file"),
    (
        ["edit", "music", "{tmp}/not-audio.wav", "x", "-m", "music-tiny", "--start", "1"],
        "needs both --start and --end",
    ),
    (
        ["edit", "music", "{tmp}/not-audio.wav", "x", "--strength", "0.5", "--source-prompt", "y"],
        "choose one mode",
    ),
    (
        ["edit", "music", "{tmp}/not-audio.wav", "x", "-m", "music-tiny", "-o", "{tmp}/e.mp4"],
        "not music formats",
    ),
    (["edit", "music", "{tmp}/not-audio.wav", "x", "-m", "music-tiny"], "not-audio.wav"),  # the codec's error
    (["job", "status", "some-id"], "give --address"),
    (["job", "submit", "{tmp}/typo.yaml", "--address", "http://127.0.0.1:9"], "colour"),
    (["train", "music", "--data", "{tmp}/no-data"], "is not a folder"),
    (["train", "music", "--data", "{tmp}", "--workers", "2"], "go with --from"),
    (["train", "music", "--data", "{tmp}", "--steps", "2,3"], "--steps '2,3': the recipe takes one number"),
    (["train", "music", "--data", "{tmp}", "--learning-rate", "5"], "--learning-rate 5.0: give a peak rate"),
    (
        ["train", "music", "--data", "{tmp}", "--from", "music-tiny", "--captions", "reel"],
        "--captions: only the bundled recipe takes these",
    ),
    (
        ["train", "music", "--data", "{tmp}", "--from", "music-tiny", "--compile"],
        "--compile: only the bundled recipe takes these",
    ),
    (
        ["train", "music", "--data", "{tmp}", "--from", "music-tiny", "-o", "{tmp}/t", "--steps", "0,0"],
        "0 keeps a stage as it is",
    ),
    (
        ["distill", "music-tiny", "--data", "{tmp}", "-o", "{tmp}/s", "--stage", "nope"],
        "has stages ['base', 'sr']",
    ),
    (["models", "--path", "{tmp}/nowhere"], "is not a folder"),
    (["gallery", "{tmp}"], "has no <job>/manifest.jsonl"),
    (["serve", "--model", "nope"], "no model 'nope'"),
]


@pytest.mark.parametrize(
    ("args", "message"), CASES, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in enumerate(CASES)]
)
def test_bad_input_is_one_clear_line_and_exit_2(args, message, files, cli_env):
    result = invoke(*[a.format(tmp=files) for a in args], env=cli_env)
    assert_clean_error(result, 2, message)
    assert not (files / "out").exists()


def test_as_a_user_runs_it_no_traceback_reaches_the_terminal(files, cli_env):
    # the subprocess path: the installed script, the real interpreter exit code
    assert_clean_error(legato("edit", "music", str(files / "not-audio.wav"), "x", "-m", "music-tiny",
                              env=cli_env), 2, "not-audio.wav")  # fmt: skip
    unreachable = legato("job", "list", "--address", "http://127.0.0.1:9")
    assert_clean_error(unreachable, 1, "cannot reach the Ray dashboard")


def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path, models):
    """`legato models --json | head -c 100`: the closed pipe is no error, no traceback."""
    import os
    import subprocess

    from .conftest import LEGATO

    many = tmp_path / "many"
    for i in range(300):  # enough JSON that the command is still writing when the reader has gone
        (many / f"m{i:03d}").mkdir(parents=True)
        (many / f"m{i:03d}" / "cascade.json").write_text((models / "music-tiny" / "cascade.json").read_text())
    proc = subprocess.Popen([str(LEGATO), "models", "--json", "--path", str(many)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "LEGATO_MODELS": str(models)})  # fmt: skip
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()  # as `head -c 100` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""
