"""legato.video: space-time diffusion for video, super-resolution in space and time, and video files.

The main flow::

    noise = randn((B, 3, T, H, W), generators(seeds))
    low = sample(Denoiser(UNet3D(...)), scheduler, noise, steps=25)          # the base model, 64-px frames
    high = SuperResolution(space=2).generate(Denoiser(sr_net), scheduler, low, steps=10, generator=gens)
    write_video("clip.mp4", (high[0] + 1) / 2, fps=8, audio=waveform, sample_rate=16_000)
    video = read_video("clip.mp4")                                               # frames, fps, audio

`UNet3D` (importing legato.video registers it, and diffusers' UNet3DConditionModel, with the sampling
loop) samples through `legato.diffusion.sample` on ``(B, C, T, H, W)``; `legato.diffusion.SuperResolution`
makes training pairs for, and samples, spatial and temporal SR models built as UNet3Ds; `legato.video.camera` makes real-looking clips from
photos; `legato.video.metrics` scores videos.
"""

from legato.video.camera import camera_move, random_camera_moves
from legato.video.io import (
    VIDEO_FORMATS,
    Video,
    VideoError,
    VideoFormat,
    read_soundtrack,
    read_video,
    write_video,
)
from legato.video.metrics import (
    VideoFeatures,
    frame_consistency,
    horizontal_drift,
    psnr,
    video_frechet_distance,
)
from legato.video.models import UNet3D

__all__ = [
    "VIDEO_FORMATS",
    "UNet3D",
    "Video",
    "VideoError",
    "VideoFeatures",
    "VideoFormat",
    "camera_move",
    "frame_consistency",
    "horizontal_drift",
    "psnr",
    "random_camera_moves",
    "read_soundtrack",
    "read_video",
    "video_frechet_distance",
    "write_video",
]
