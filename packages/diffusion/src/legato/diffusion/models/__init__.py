"""Denoising networks: diffusers' UNets, Legato's DiT, and the call convention over them."""

from legato.diffusion.models.dit import DiT, DiTOutput
from legato.diffusion.models.forward import forward_network, register_network
from legato.diffusion.models.mlp import MLP, MLPOutput

__all__ = ["MLP", "DiT", "DiTOutput", "MLPOutput", "forward_network", "register_network"]
