"""SpectrogramParams: validation, presets, serialisation."""

import dataclasses

import pytest

from legato.codec import PRESETS, RIFFUSION, CodecError, SpectrogramParams


def test_riffusion_preset_is_riffusions_published_geometry():
    assert RIFFUSION.sample_rate == 44_100
    assert RIFFUSION.n_mels == 512
    assert RIFFUSION.hop_length / RIFFUSION.sample_rate == pytest.approx(0.010)
    assert RIFFUSION.seconds(512) == pytest.approx(5.12)
    assert set(PRESETS) == {"riffusion", "small"}


def test_frozen_and_hashable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RIFFUSION.n_mels = 3  # type: ignore[misc]
    assert len({RIFFUSION, SpectrogramParams.from_json(RIFFUSION.to_json())}) == 1


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sample_rate": 0}, "sample_rate=0"),
        ({"sample_rate": 10**9}, "sample_rate=1000000000"),
        ({"n_fft": 1 << 20}, "n_fft=1048576"),
        ({"win_length": 4096}, "win_length=4096.*n_fft"),
        ({"hop_length": 2048, "win_length": 1024}, "hop_length=2048"),
        ({"n_mels": -3}, "n_mels=-3"),
        ({"f_max": 12_000.0}, "f_max=12000.0"),
        ({"f_min": float("nan")}, "f_min=nan"),
        ({"power": 3.0}, "power=3.0"),
        ({"window": "kaiser"}, "window='kaiser'"),
        ({"reference": -1.0}, "reference=-1.0"),
        ({"dynamic_range_db": 0.0}, "dynamic_range_db=0.0"),
        ({"n_mels": 2.5}, "n_mels=2.5"),
    ],
)
def test_absurd_params_raise_codec_error(changes, match):
    with pytest.raises(CodecError, match=match):
        SpectrogramParams(**changes)


def test_unknown_fields_and_bad_json():
    with pytest.raises(CodecError, match=r"unknown field\(s\) \['n_mel'\]"):
        SpectrogramParams.from_dict({"n_mel": 64})
    with pytest.raises(CodecError, match="does not parse"):
        SpectrogramParams.from_json("{")
