"""The bad-input corpus through the command: exit 2, one ``error:`` line naming the problem, no output file."""

import shutil

import numpy as np
import torch
from safetensors.torch import load_file

from .conftest import assert_clean_error, legato


def test_prompts_models_and_files_that_are_refused(tmp_path, models, cli_env):
    pickled = tmp_path / "models" / "music-pickled"
    shutil.copytree(models / "music-tiny", pickled)
    weights = pickled / "base" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), weights.with_suffix(".bin"))
    weights.unlink()
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(2048))
    (tmp_path / "empty.flac").write_bytes(b"")
    out = tmp_path / "out"
    cases = [
        (["generate", "music", "ragtime\x1b[31m piano", "-m", "music-tiny"], "U+001B"),
        (["generate", "music", "a jig " * 1000, "-m", "music-tiny"], "6000 characters"),
        (["generate", "music", "a jig", "-m", str(pickled)], "only safetensors"),
        (["edit", "music", str(tmp_path / "noise.wav"), "a jig", "-m", "music-tiny", "-o", str(out / "x.wav")], "noise.wav"),
        (["edit", "music", str(tmp_path / "empty.flac"), "a jig", "-m", "music-tiny", "-o", str(out / "y.wav")], "empty.flac"),
    ]  # fmt: skip
    for args, words in cases:
        if args[0] == "generate":
            args = [*args, "-o", str(out)]
        assert_clean_error(legato(*args, env=cli_env), 2, words)
    # an absurd size is refused by the option's own range check (typer's usage message, also exit 2)
    absurd = legato(
        "generate", "music", "a jig", "-m", "music-tiny", "--duration", "100000", "-o", str(out), env=cli_env
    )
    assert absurd.code == 2
    assert "Traceback" not in absurd.stderr
    assert "duration" in absurd.stderr
    assert not out.exists() or not any(out.rglob("*.wav")), sorted(out.rglob("*"))
