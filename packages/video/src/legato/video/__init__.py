"""legato.video: space-time diffusion for video.

The factorized 3D UNet, spatial and temporal super-resolution models, video files through av.

This member holds only its skeleton so far: the code arrives with its issue (see the repository README).
"""

__all__: list[str] = []
