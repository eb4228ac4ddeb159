"""Video denoising networks, registered with legato.diffusion's call convention.

- `UNet3D` takes ``(B, C, T, H, W)`` videos and ``(B, C, H, W)`` images (the skip-time path).

diffusers' ``UNet3DConditionModel`` (ModelScope / Zeroscope) is a diffusers class like the 2D UNets, so its
convention lives with theirs in `legato.diffusion.models.forward`: a Ray worker that unpickles an imported
video stage finds it without importing this package.
"""

from torch import Tensor, nn

from legato.diffusion import Conditioning, register_network
from legato.diffusion.models.forward import refuse
from legato.video.models.unet3d import UNet3D, UNet3DOutput


@register_network(UNet3D, ranks=(4, 5))
def _unet3d(network: nn.Module, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    refuse(network, cond, "pooled", "labels", "guidance")
    return network(x, t, encoder_hidden_states=cond.text, fps=cond.fps, noise_level=cond.noise_level).sample


__all__ = ["UNet3D", "UNet3DOutput"]
