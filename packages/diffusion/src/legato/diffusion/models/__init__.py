"""Denoising networks: diffusers' UNets, Legato's DiT, and the call convention over them."""

from legato.diffusion.models.dispatch import forward_network, register_network
from legato.diffusion.models.dit import DiT, DiTOutput

__all__ = ["DiT", "DiTOutput", "forward_network", "register_network"]
