"""legato.diffusion: the image diffusion core.

Denoisers (diffusers ModelMixin + ConfigMixin), prediction-type and EDM adapters, the one sampling
loop over diffusers schedulers for tensors of any rank, guidance and editing, training and distillation.

This member holds only its skeleton so far: the code arrives with its issue (see the repository README).
"""

__all__: list[str] = []
