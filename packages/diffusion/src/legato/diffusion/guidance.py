"""Classifier-free guidance (Ho & Salimans 2022) as a denoiser wrapper.

The conditional and unconditional halves run in one batched forward; the guided output is
``u + w (c - u)`` with a per-item scale ``w``, optionally rescaled towards the conditional output's standard
deviation (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Sec. 3.4).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from legato.diffusion.conditioning import Conditioning
from legato.diffusion.errors import DiffusionError
from legato.diffusion.tensors import append_dims


class ClassifierFreeGuidance(nn.Module):
    """Wrap a denoiser so that it returns the guided prediction, in the wrapped denoiser's ``output_type``.

    Args:
        denoiser: any Legato denoiser trained with condition dropout.
        uncond: the unconditional conditioning (e.g. the empty prompt's embedding), with 1 or B rows; or a
            mapping from integer timestep to such a conditioning (per-step null embeddings, as null-text
            inversion produces). Inputs it leaves out (``low_res``, ``noise_level``, ``fps``) are taken from
            the conditional half, so a super-resolution stage is guided by its prompt only.
        scale: guidance scale ``w``, a float or a per-item ``(B,)`` tensor; 1 is the conditional model alone.
        rescale: ``phi`` in [0, 1] of guidance rescale; 0 disables it.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        uncond: Conditioning | Mapping[int, Conditioning],
        scale: float | Tensor = 5.0,
        rescale: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= rescale <= 1.0:
            raise DiffusionError(f"rescale={rescale!r} must lie in [0, 1]; 0.7 is the paper's choice")
        self.denoiser = denoiser
        self.uncond = uncond
        self.scale = scale
        self.rescale = rescale
        self.output_type: str = denoiser.output_type

    def _uncond_at(self, t: Tensor, batch: int) -> Conditioning:
        uncond = self.uncond
        if isinstance(uncond, Mapping):
            key = int(t.reshape(-1)[0])
            if key not in uncond:
                raise DiffusionError(
                    f"no unconditional embedding for timestep {key}; known: {sorted(uncond)[:5]}..."
                )
            uncond = uncond[key]
        rows = uncond.batch_size
        if rows == 1 and batch > 1:
            uncond = uncond.map(lambda v: v.expand(batch, *v.shape[1:]))
        elif rows not in (None, batch):
            raise DiffusionError(f"uncond has {rows} rows for a batch of {batch}; pass 1 or {batch}")
        return uncond

    def forward(self, x: Tensor, t: Tensor, cond: Conditioning | None = None) -> Tensor:
        cond = cond or Conditioning()
        batch = x.shape[0]
        scale = torch.as_tensor(self.scale, dtype=x.dtype, device=x.device)
        if scale.ndim == 0:
            scale = scale.expand(batch)
        if scale.shape != (batch,):
            raise DiffusionError(f"guidance scale has shape {tuple(scale.shape)} for a batch of {batch}")
        if self.rescale == 0.0 and bool((scale == 1.0).all()):
            return self.denoiser(x, t, cond)  # w = 1 is the conditional model: skip the unconditional half
        uncond = self._uncond_at(t, batch)
        # Inputs are not guidance: the unconditional half sees the same low-res input, noise level and fps.
        shared = {
            k: getattr(cond, k) for k in ("low_res", "noise_level", "fps") if getattr(uncond, k) is None
        }
        uncond = uncond.replace(**{k: v for k, v in shared.items() if v is not None})
        both = self.denoiser(torch.cat([x, x]), torch.cat([t, t]), cond.cat(uncond))
        cond_out, uncond_out = both.chunk(2)
        guided = uncond_out + append_dims(scale, x.ndim) * (cond_out - uncond_out)
        if self.rescale:
            dims = tuple(range(1, x.ndim))
            ratio = cond_out.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
            guided = self.rescale * guided * ratio + (1 - self.rescale) * guided
        return guided
