"""Video denoising networks, registered with legato.diffusion's call convention.

- `UNet3D` takes ``(B, C, T, H, W)`` videos and ``(B, C, H, W)`` images (the skip-time path).
- diffusers' ``UNet3DConditionModel`` (the ModelScope / Zeroscope layout) samples as a Legato video
  denoiser too, so users can bring those checkpoints.
"""

from diffusers import UNet3DConditionModel
from torch import Tensor, nn

from legato.diffusion import Conditioning, register_network
from legato.diffusion.models.forward import refuse
from legato.video.models.unet3d import UNet3D, UNet3DOutput


@register_network(UNet3D, ranks=(4, 5))
def _unet3d(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    refuse(network, cond, "pooled", "labels", "guidance")
    return network(x, t, encoder_hidden_states=cond.text, fps=cond.fps, noise_level=cond.noise_level).sample


@register_network(UNet3DConditionModel, ranks=(5,))
def _diffusers_unet3d(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    refuse(network, cond, "pooled", "labels", "guidance", "fps", "noise_level")
    if cond.text is None:
        raise ValueError("UNet3DConditionModel cross-attends to text: pass Conditioning(text=(B, L, D))")
    return network(x, t, encoder_hidden_states=cond.text).sample


__all__ = ["UNet3D", "UNet3DOutput"]
