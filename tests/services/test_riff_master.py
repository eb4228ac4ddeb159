"""``legato generate music --master`` and ``--interpolate``: mastered files and riffs, read back through av."""

import json

import av

from legato.codec import read_audio
from legato.codec.master import integrated_loudness, true_peak

from .conftest import assert_clean_error, legato


def test_mastered_clips_land_on_the_loudness_target_and_the_manifest_says_so(tmp_path, cli_env):
    out = tmp_path / "mastered"
    result = legato("generate", "music", "a jig on fiddle", "--seed", "1", "--duration", "2", "-m", "music-tiny",
                    "--master", "--loudness", "-16", "-f", "flac", "-o", str(out), env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    (row,) = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    audio, rate = read_audio(out / row["files"][0], channels=2)
    assert rate == 44_100
    assert audio.shape == (2, 88_200)
    assert abs(integrated_loudness(audio, rate) + 16.0) <= 0.5
    assert true_peak(audio, rate) <= -0.95  # -1 dBTP, plus 16-bit rounding of the file
    assert abs(row["audio"]["loudness_lufs"] + 16.0) <= 0.5
    assert "+master=" in row["model"]  # a folder never mixes mastered and raw clips


def test_clips_and_soundtracks_are_mastered_unless_no_master(tmp_path, cli_env):
    """The default output is what listeners expect (44.1 kHz stereo, -14 LUFS, true peak under -1 dBTP);
    ``--no-master`` gives the model's raw 16 kHz mono, for music and for a video's soundtrack."""
    for flags, expected in (([], (44_100, 2)), (["--no-master"], (16_000, 1))):
        out = tmp_path / f"music{len(flags)}"
        result = legato("generate", "music", "a chorale on organ", "-m", "music-tiny", "-d", "2", "-f", "wav",
                        "-o", str(out), "--json", *flags, env=cli_env)  # fmt: skip
        assert result.code == 0, result.stderr
        (item,) = result.json()["items"]
        audio, rate = read_audio(item["files"][0], channels=None)
        assert (rate, audio.shape[0]) == expected
        if not flags:
            assert abs(integrated_loudness(audio, rate) + 14.0) <= 0.5
            assert true_peak(audio, rate) <= -0.95  # -1 dBTP, plus 16-bit rounding of the file
    out = tmp_path / "video"
    result = legato("generate", "video", "a camera move over a photo", "-m", "video-tiny", "--soundtrack", "music-tiny",
                    "--no-master", "-o", str(out), "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    (item,) = result.json()["items"]
    with av.open(item["files"][0]) as f:
        sound = f.streams.audio[0].codec_context
        assert (sound.sample_rate, sound.channels) == (16_000, 1)
    bad = legato("generate", "video", "x", "-m", "video-tiny", "--no-master", env=cli_env)
    assert_clean_error(bad, 2, "--soundtrack")


def test_a_riff_writes_one_track_and_its_steps(tmp_path, cli_env):
    out = tmp_path / "riffs"
    result = legato("generate", "music", "a jig on fiddle", "a low drone", "--seed", "0", "--seed", "1",
                    "--interpolate", "3", "-m", "music-tiny", "-o", str(out), "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert len(summary["steps"]) == 3
    track, rate = read_audio(summary["track"])
    step, _ = read_audio(summary["steps"][0])
    assert rate == 44_100  # mastered, as every clip
    assert track.shape[-1] > 2 * step.shape[-1]  # three windows crossfaded by a quarter of one


def test_riff_and_mastering_options_are_checked(tmp_path, cli_env):
    bad = legato("generate", "music", "a", "b", "c", "--interpolate", "3", "-m", "music-tiny", env=cli_env)
    assert_clean_error(bad, 2, "two ends")
    bad = legato(
        "generate", "music", "a", "--no-master", "--loudness", "-10", "-m", "music-tiny", env=cli_env
    )
    assert_clean_error(bad, 2, "--no-master")
