"""A neural vocoder: mel image -> waveform, the second inversion path beside Griffin-Lim.

`Vocoder` follows Vocos (Siuzdak 2023, "Vocos: Closing the gap between time-domain and Fourier-based neural
vocoders"): a ConvNeXt backbone (Liu et al. 2022) runs at the *frame* rate of the mel spectrogram and a head
predicts each frame's complex STFT (log-magnitude and phase), which an inverse STFT turns into audio. No
layer runs at the sample rate, so it is hundreds of times faster than real time on a CPU, and it learns the
magnitude detail that 64 mel bands do not keep (NNLS + Griffin-Lim can only smear it).

At inference the predicted spectrum is made consistent with the image it came from (`mel_consistency`):
each round re-analyses the audio and rescales its STFT, band by band, to the mel the image says. The mel is
the one thing known for certain about the target, so this removes the network's errors inside what the mel
carries and keeps what it adds beyond it (on held-out music: 2 rounds take spectral convergence from -13.0
to -14.9 dB; `benchmarks/vocoder.py`).

Its input is the codec's unit image (``MelCodec.to_unit``, what the diffusion models produce); the
`SpectrogramParams` it was trained with travel in its config and are checked against the codec it decodes
for. `spectral_loss` is what it is trained on (multi-resolution STFT: Yamamoto et al. 2020, Parallel
WaveGAN, plus a log-mel term).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import Tensor, nn

from legato.codec.errors import CodecError
from legato.codec.inversion import Bands
from legato.codec.mel import MelCodec, check_finite
from legato.codec.params import SpectrogramParams

RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop) of the multi-resolution STFT loss
REFINE = 2  # mel-consistency rounds at inference
MAX_GAIN = 4.0  # per band and round, in power


def mel_consistency(
    spec: Tensor,
    unit: Tensor,
    codec: MelCodec,
    window: Tensor,
    rounds: int = REFINE,
    max_gain: float = MAX_GAIN,
    level: Tensor | float | None = None,
) -> Tensor:
    """A complex STFT ``(B, n_freqs, frames)`` pulled towards the mel that the unit image ``(B, n_mels, frames)``
    says, ``rounds`` times: the STFT of its audio (a consistent spectrogram) is scaled per frequency bin by
    the filterbank-weighted mean of the per-band ratios target / current mel power (each clamped to
    ``1 / max_gain .. max_gain``); bands at the image's floor (silence or below the dynamic range) say
    nothing exact and are left alone. Needs absolute levels: a fixed ``params.reference``, or ``level``, the
    mel maximum of each image (per-image-reference params: Riffusion's EXIF holds it)."""
    p = codec.params
    target = codec.from_unit(unit, level)
    floor = unit < 1.5 / 255
    bands = Bands(codec.fb.to(spec.real.dtype))
    geometry = (p.n_fft, p.hop_length, p.win_length, window)  # the mel's own STFT (zero-padded, as it is)
    for _ in range(rounds):
        audio = torch.istft(spec, *geometry, center=True)
        spec = torch.stft(audio, *geometry, center=True, pad_mode="constant", return_complex=True)
        power = spec.abs().pow(p.power)
        ratio = (target / bands.mel(power).clamp_min(1e-10)).clamp(1 / max_gain, max_gain)
        spec = spec * bands.spread(torch.where(floor, torch.ones_like(ratio), ratio)).pow(1 / p.power)
    return spec


class ConvNeXtBlock(nn.Module):
    """Depthwise conv over frames -> LayerNorm -> pointwise MLP (GELU) -> layer scale, residual. ``(B, D, T)``."""

    def __init__(self, dim: int, hidden: int, kernel: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        h = rearrange(self.depthwise(x), "b d t -> b t d")
        h = self.down(nn.functional.gelu(self.up(self.norm(h)))) * self.gamma
        return x + rearrange(h, "b t d -> b d t")


class Vocoder(ModelMixin, ConfigMixin):
    """Mel unit image ``(B, n_mels, frames)`` in [0, 1] -> waveform ``(B, (frames - 1) * hop_length)``.

    Args:
        spectrogram: the `SpectrogramParams` (as a dict) of the mel images it decodes. Frame ``k`` of the
            mel is frame ``k`` of the predicted STFT (the same hop).
        dim, hidden, layers, kernel: the ConvNeXt backbone's width, MLP width, depth and kernel (frames).
        n_fft: the predicted STFT's size (a Hann window of that length); None: the mel's own ``n_fft`` and
            window. Vocos uses ``4 * hop``: RIFFUSION's mel is analysed with a 17,640-point FFT (8,821 bins
            per frame to predict), its vocoder predicts 1,764-point frames (883 bins).
        level: for params with a per-image reference (RIFFUSION: the image says nothing of loudness), the
            mel maximum of the audio it was trained to produce; `forward` scales to a given level from it.
    """

    @register_to_config
    def __init__(
        self,
        spectrogram: dict,
        dim: int = 192,
        hidden: int = 576,
        layers: int = 8,
        kernel: int = 7,
        n_fft: int | None = None,
        level: float | None = None,
    ) -> None:
        super().__init__()
        params = SpectrogramParams.from_dict(spectrogram)
        self.embed = nn.Conv1d(params.n_mels, dim, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, hidden, kernel, 1.0 / layers) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.n_fft, self.win_length = (params.n_fft, params.win_length) if n_fft is None else (n_fft, n_fft)
        self.head = nn.Linear(dim, 2 * (self.n_fft // 2 + 1))
        window = getattr(torch, f"{params.window if n_fft is None else 'hann'}_window")(self.win_length)
        self.register_buffer("window", window, persistent=False)
        self.codec = MelCodec(params)  # non-persistent buffers only: nothing in the weights file

    @property
    def params(self) -> SpectrogramParams:
        return SpectrogramParams.from_dict(self.config.spectrogram)

    def check_params(self, params: SpectrogramParams) -> None:
        """Raise unless mel images made with ``params`` are what this vocoder was trained to decode."""
        if params != self.params:
            raise CodecError(
                f"this vocoder decodes mel images of {self.params.to_json()}, not {params.to_json()}; use "
                "Griffin-Lim (vocoder=None) for these, or a vocoder trained on them"
            )

    def spectrum(self, unit: Tensor) -> Tensor:
        """``(B, n_mels, frames)`` -> ``(B, n_freqs, frames)`` complex STFT."""
        h = self.embed(unit * 2 - 1)
        h = rearrange(self.norm(rearrange(h, "b d t -> b t d")), "b t d -> b d t")
        for block in self.blocks:
            h = block(h)
        out = self.head(self.final_norm(rearrange(h, "b d t -> b t d"))).float()
        log_mag, phase = rearrange(out, "b t (two f) -> two b f t", two=2)
        return torch.polar(log_mag.clamp(max=8.0).exp(), phase)  # exp(8) ~ 3000: above any real bin

    def forward(
        self,
        unit: Tensor,
        length: int | None = None,
        refine: int | None = None,
        level: Tensor | float | None = None,
    ) -> Tensor:
        """``(..., n_mels, frames)`` unit image -> ``(..., length)`` waveform (default ``(frames - 1) * hop``),
        after ``refine`` rounds of `mel_consistency` (0: the network's spectrum as it is, as in training;
        None: `REFINE` rounds, or none for a vocoder with its own ``n_fft``, whose rounds run in the mel's
        STFT, from its audio, and have not paid yet: RIFFUSION's magnitude mel sums over 2.5 Hz bins that
        its 1,764-point frames do not resolve, see docs/checkpoints.md). ``level``
        (per-image-reference params only; one per image or one for all): the mel maximum the audio should
        have, e.g. the one a Riffusion image's EXIF holds; None: the vocoder's own ``level``, the one its
        training audio had (the rounds match the image at that level)."""
        p = self.params
        if unit.ndim < 2 or unit.shape[-2] != p.n_mels:
            raise CodecError(
                f"vocoder input of shape {tuple(unit.shape)}: expected (..., {p.n_mels}, frames) mel images"
            )
        check_finite(unit, "mel image")
        batch_shape, frames = unit.shape[:-2], unit.shape[-1]
        flat = unit.reshape(-1, p.n_mels, frames).to(self.dtype)
        length = (frames - 1) * p.hop_length if length is None else length
        spec = self.spectrum(flat)
        own = (self.n_fft, p.hop_length, self.win_length, self.window.float())
        gain, target = 1.0, None
        if self.config.level is not None:  # per-image reference: the audio is made at `level`
            target = self.config.level if level is None else level
            gain = torch.as_tensor(target, dtype=spec.real.dtype, device=spec.device) / self.config.level
            gain = gain.reshape(-1, 1, 1) if gain.ndim else gain
        refine = (REFINE if self.n_fft == p.n_fft else 0) if refine is None else refine
        if not refine or (p.reference is None and target is None):
            audio = torch.istft(spec * gain, *own, center=True, length=length)
            return audio.reshape(*batch_shape, length)
        window = self.codec.window.float()
        codec = (p.n_fft, p.hop_length, p.win_length, window)
        if self.n_fft != p.n_fft:  # its own STFT: the rounds run in the mel's (a longer FFT, finer bins)
            audio = torch.istft(spec, *own, center=True)
            spec = torch.stft(audio, *codec, center=True, pad_mode="constant", return_complex=True)
        spec = mel_consistency(spec * gain, flat.float(), self.codec, window, refine, level=target)
        audio = torch.istft(spec, *codec, center=True, length=length)
        return audio.reshape(*batch_shape, length)


def _stft_magnitude(audio: Tensor, n_fft: int, hop: int) -> Tensor:
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    return torch.stft(audio, n_fft, hop, window=window, center=True, return_complex=True).abs()


def spectral_loss(reference: Tensor, estimate: Tensor, mel_basis: Tensor | None = None) -> Tensor:
    """Per-item multi-resolution STFT loss of ``(B, N)`` waveforms: spectral convergence + L1 log magnitude at
    each of `RESOLUTIONS`, averaged, plus the L1 distance of log mels (``mel_basis`` ``(n_freqs, n_mels)`` at
    the middle resolution) where given. ``(B,)``."""
    reference, estimate = reference.float(), estimate.float()
    total = reference.new_zeros(reference.shape[0])
    for n_fft, hop in RESOLUTIONS:
        ref, est = _stft_magnitude(reference, n_fft, hop), _stft_magnitude(estimate, n_fft, hop)
        convergence = (ref - est).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1).clamp_min(1e-7)
        log_l1 = (ref.clamp_min(1e-5).log() - est.clamp_min(1e-5).log()).abs().flatten(1).mean(dim=1)
        total = total + (convergence + log_l1) / len(RESOLUTIONS)
        if mel_basis is not None and n_fft == mel_basis.shape[0] * 2 - 2:
            mel_ref = (mel_basis.T @ ref).clamp_min(1e-5).log()
            mel_est = (mel_basis.T @ est).clamp_min(1e-5).log()
            total = total + (mel_ref - mel_est).abs().flatten(1).mean(dim=1)
    return total
