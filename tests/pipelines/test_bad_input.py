"""The bad-input corpus through the Python API: each case is refused with a typed error that names the problem
and the fix, and nothing is left half-written. (The CLI's exit codes: tests/services/test_errors.py and
test_bad_input_cli.py; the HTTP service's 4xx bodies: tests/services/test_serve.py.)"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from legato.cascade import require_safetensors
from legato.codec import SMALL, CodecError, MelCodec, read_audio, write_audio
from legato.codec.master import Mastering, master
from legato.codec.testing import harmonic_notes
from legato.codec.vocoder import Vocoder
from legato.diffusion import DiffusionError
from legato.pipelines.jobs import JobSpec
from legato.pipelines.music import MusicPipeline
from legato.pipelines.text import check_prompt
from legato.video.io import write_video


def good_flac(path: Path) -> Path:
    return write_audio(path, harmonic_notes(1.0, 16_000)[None], 16_000)


def corrupt_files(folder: Path) -> dict[str, Path]:
    """Audio and video files that are not what their names say."""
    folder.mkdir(parents=True, exist_ok=True)
    flac = good_flac(folder / "good.flac")
    files = {
        "zero-length.wav": b"",
        "random-bytes.wav": np.random.default_rng(0).bytes(4096),
        "truncated.flac": flac.read_bytes()[:200],
        "text-as.mp3": b"this is a text file, not audio\n" * 10,
        "png-as.wav": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        "random-bytes.mp4": np.random.default_rng(1).bytes(4096),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def test_corrupt_truncated_empty_and_wrong_format_files_are_refused(tmp_path):
    for name, path in corrupt_files(tmp_path / "bad").items():
        with pytest.raises(CodecError) as err:
            read_audio(path)
        message = str(err.value)
        assert str(path) in message or path.name in message, (name, message)


def test_non_finite_audio_and_tensors_are_refused_and_nothing_is_written(tmp_path):
    codec = MelCodec(SMALL)
    for bad in (float("nan"), float("inf")):
        audio = harmonic_notes(0.5, 16_000)[None].clone()
        audio[0, 100] = bad
        with pytest.raises(CodecError, match="NaN/Inf"):
            codec.mel(audio)
        with pytest.raises(CodecError, match="NaN/Inf"):
            write_audio(tmp_path / "x.wav", audio, 16_000)
        with pytest.raises(CodecError, match="NaN/Inf"):
            Vocoder(SMALL.to_dict(), dim=8, hidden=8, layers=1)(torch.full((1, 64, 4), bad))
        frames = torch.rand(4, 8, 8, 3)
        frames[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match=r"NaN|finite"):
            write_video(tmp_path / "x.mp4", frames, 8.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_wrong_rates_channels_and_shapes_are_refused(tmp_path):
    audio = harmonic_notes(0.5, 16_000)[None]
    with pytest.raises(CodecError, match="sample_rate"):
        write_audio(tmp_path / "x.wav", audio, 0)
    with pytest.raises(CodecError, match="channels"):
        read_audio(good_flac(tmp_path / "ok.flac"), channels=0)
    with pytest.raises(CodecError, match="target=7"):
        master(audio, 16_000, Mastering(sample_rate=7))
    with pytest.raises(CodecError, match="expected"):
        Vocoder(SMALL.to_dict(), dim=8, hidden=8, layers=1)(torch.rand(1, 80, 4))
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("x" * 5000, "5000 characters"),
        ("a jig\x00on fiddle", "U+0000"),
        ("ragtime\x1b[31m piano", "U+001B"),
    ],
)
def test_empty_huge_and_control_character_prompts_are_refused(prompt, words, music_model):
    with pytest.raises(ValueError, match=words.replace("+", r"\+")):
        check_prompt(prompt)
    with pytest.raises(ValidationError, match=words.replace("+", r"\+")):
        JobSpec(kind="music", model=str(music_model), output="out", items=[{"prompt": prompt}])


def test_a_unicode_prompt_with_newlines_is_fine():
    assert check_prompt("une gigue au violon,\nen ré majeur — ♪").startswith("une")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"items": [{"prompt": "a", "id": "x"}, {"prompt": "b", "id": "x"}]}, "more than once"),
        ({"items": [{"prompt": "a", "id": "../escape"}]}, "id"),
        ({"items": [{"prompt": "a", "id": "/etc/passwd"}]}, "id"),
        ({"items": [{"prompt": "a", "duration": 1e6}]}, "duration"),
        ({"items": [{"prompt": "a", "seed": -1}]}, "seed"),
        ({"items": []}, "items"),
        ({"chunk": 0}, "chunk"),
        ({"mastering": {"loudness": 3}}, "loudness"),
        ({"kind": "video", "mastering": {}}, "this video job has no soundtrack"),
        ({"gpus": 8}, "with executor ray or ray-data .* not with executor 'local'"),
        ({"executor": "ray", "gpus": 8, "cpus": 4}, "give one of them"),
        ({"executor": "ray", "gpus": 0}, "gpus"),
    ],
)
def test_bad_job_specs_name_the_field(change, words, music_model, tmp_path):
    spec = {
        "kind": "music",
        "model": str(music_model),
        "output": str(tmp_path / "out"),
        "items": [{"prompt": "a"}],
    }
    with pytest.raises(ValidationError, match=words):
        JobSpec(**{**spec, **change})
    assert not (tmp_path / "out").exists()


def broken_copies(model: Path, root: Path) -> dict[str, Path]:
    """Copies of a good cascade folder, each broken one way."""
    made = {}

    def copy(name: str) -> Path:
        made[name] = root / name
        shutil.copytree(model, made[name])
        return made[name]

    (copy("no-cascade-json") / "cascade.json").unlink()
    (copy("no-stage-weights") / "sr" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(copy("no-stage-folder") / "sr")
    broken = copy("pickled-weights") / "base"
    weights = load_file(broken / "diffusion_pytorch_model.safetensors")
    torch.save(weights, broken / "diffusion_pytorch_model.bin")
    (broken / "diffusion_pytorch_model.safetensors").unlink()
    config = copy("mismatched-config") / "base" / "config.json"
    data = json.loads(config.read_text())
    data["block_out_channels"] = [c * 2 for c in data["block_out_channels"]]
    config.write_text(json.dumps(data))
    (copy("json-garbage") / "cascade.json").write_text("{not json")
    return made


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("no-cascade-json", FileNotFoundError, "cascade.json"),
        ("no-stage-weights", FileNotFoundError, "no .safetensors"),
        ("no-stage-folder", FileNotFoundError, "incomplete"),
        ("pickled-weights", DiffusionError, "only safetensors"),
        ("mismatched-config", (ValueError, RuntimeError), "size|shape"),
        ("json-garbage", DiffusionError, "cascade.json is not valid JSON"),
    ],
)
def test_broken_model_folders_are_refused(name, error, words, music_model, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "broken-models"
    if not root.is_dir():
        broken_copies(music_model, root)
    with pytest.raises(error, match=words):
        MusicPipeline.from_pretrained(root / name)


def test_pickles_are_refused_with_how_to_convert(tmp_path):
    (tmp_path / "model.ckpt").write_bytes(b"not really a pickle")
    with pytest.raises(DiffusionError, match=r"convert it once: python -c .*save_file\(torch.load"):
        require_safetensors(tmp_path)
