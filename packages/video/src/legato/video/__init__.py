"""legato.video: space-time diffusion for video, and video files.

The main flow (so far)::

    write_video("clip.mp4", frames, fps=8, audio=waveform, sample_rate=16_000)   # frames (T, C, H, W) in [0, 1]
    video = read_video("clip.mp4")                                               # frames, fps, audio

`UNet3D` (importing legato.video registers it, and diffusers' UNet3DConditionModel, with the sampling
loop) samples through `legato.diffusion.sample` on ``(B, C, T, H, W)``. The spatial/temporal
super-resolution models arrive with the rest of their issue.
"""

from legato.video.io import VIDEO_FORMATS, Video, VideoError, VideoFormat, read_video, write_video
from legato.video.models import UNet3D

__all__ = ["VIDEO_FORMATS", "UNet3D", "Video", "VideoError", "VideoFormat", "read_video", "write_video"]
