"""The bundled vocoder on fresh renders, its training through the one Trainer, and the pipeline's choice."""

from pathlib import Path

import pytest
import torch

from legato.codec import SMALL, MelCodec, spectral_convergence
from legato.codec.vocoder import Vocoder
from legato.recipes.datasets.music import render_pieces
from legato.recipes.vocoder import build_audio, load_audio, trainer

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def fresh_audio() -> torch.Tensor:
    # Seed 7's renders: other instruments and tempi than the training renders (seed 0) of these pieces.
    _, stream = render_pieces(SMALL.sample_rate, 4.2, per_style=2, renders=1, seed=7)
    return torch.stack([torch.from_numpy(r.audio[: 256 * SMALL.hop_length]) for r in stream])


def test_bundled_vocoder_beats_griffin_lim(fresh_audio: torch.Tensor) -> None:
    vocoder = Vocoder.from_pretrained(MODELS / "vocoder-music", low_cpu_mem_usage=False).float().eval()
    codec = MelCodec(SMALL)
    unit = (codec.to_unit(codec.mel(fresh_audio)) * 255).round() / 255
    n = fresh_audio.shape[-1]
    with torch.no_grad():
        ours = spectral_convergence(fresh_audio, vocoder(unit, length=n)).mean()
    gl = spectral_convergence(fresh_audio, codec.audio(codec.from_unit(unit), n_iter=32, length=n)).mean()
    # benchmarks/vocoder.py measured 5.5 dB on the 40 held-out windows; 8 fresh renders are noisier
    assert ours < gl - 3.0, (float(ours), float(gl))


def test_training_data_and_trainer_round_trip(tmp_path: Path) -> None:
    build_audio(tmp_path / "data", per_style=2, seed=3)
    train, params = load_audio(tmp_path / "data", "train")
    held, _ = load_audio(tmp_path / "data", "held_out")
    assert params == SMALL
    assert len(train) == 4
    assert len(held) == 4  # one held-out piece per style
    assert all(a.abs().max() > 0.05 for a in train)
    run = trainer(tmp_path / "data", tmp_path / "run", steps=12, batch=4, width=32, layers=1, lr=2e-3)
    run.config = type(run.config)(**{**run.config.__dict__, "progress": False, "ema_decay": None})
    result = run.fit()
    assert result.step == 12
    assert sum(result.losses[-3:]) < sum(result.losses[:3]), result.losses
    assert (tmp_path / "run" / "checkpoints").is_dir()


def test_pipeline_uses_the_vocoder_where_the_folder_names_one() -> None:
    from legato.pipelines.music import MusicPipeline

    try:
        auto = MusicPipeline.from_pretrained(MODELS / "music-fast")
    except (OSError, ImportError) as err:  # the text encoder package is not installed
        pytest.skip(f"bundled text encoder unavailable: {err}")
    assert isinstance(auto.vocoder, Vocoder)
    assert MusicPipeline.from_pretrained(MODELS / "music-fast", inversion="griffin-lim").vocoder is None
    with pytest.raises(FileNotFoundError, match="griffin-lim"):
        MusicPipeline.from_pretrained(MODELS / "music-fast", inversion=str(MODELS / "nowhere"))


def test_a_riffusion_vocoder_predicts_its_own_stft_at_one_level_and_scales_to_any() -> None:
    """RIFFUSION's images carry no loudness (a per-image max) and a 17,640-point FFT: its vocoder predicts
    1,764-point frames (Vocos' 4 x hop) at one canonical level, scaled to the level an image's EXIF holds."""
    from legato.codec import RIFFUSION
    from legato.recipes.vocoder import VocoderObjective

    params = RIFFUSION.replace(n_mels=64)
    vocoder = Vocoder(params.to_dict(), dim=16, hidden=32, layers=1, n_fft=1764, level=2.0).eval()
    assert vocoder.head.out_features == 2 * 883
    unit = torch.rand(2, 64, 20)
    with torch.no_grad():
        for refine in (0, 2):  # the consistency rounds match the image at the level asked for
            own, scaled = (
                vocoder(unit, refine=refine),
                vocoder(unit, level=torch.tensor([2.0, 6.0]), refine=refine),
            )
            assert own.shape == (2, 19 * params.hop_length)
            torch.testing.assert_close(scaled, own * torch.tensor([[1.0], [3.0]]), rtol=1e-4, atol=1e-6)
    # training brings every target to the level, so the loss does not depend on the audio's loudness
    objective = VocoderObjective(params.to_json(), quantize=False, level=2.0)
    audio = torch.randn(2, 1, 64 * params.hop_length) * 0.1
    with torch.no_grad():
        quiet = objective.loss(vocoder, None, audio, None, None)
        loud = objective.loss(vocoder, None, audio * 5, None, None)
    torch.testing.assert_close(quiet, loud, rtol=1e-4, atol=1e-5)
