"""legato.video: space-time diffusion for video, and video files.

The main flow (so far)::

    write_video("clip.mp4", frames, fps=8, audio=waveform, sample_rate=16_000)   # frames (T, C, H, W) in [0, 1]
    video = read_video("clip.mp4")                                               # frames, fps, audio

The factorized 3D UNet and the spatial/temporal super-resolution models arrive with the rest of their issue.
"""

from legato.video.io import VIDEO_FORMATS, Video, VideoError, VideoFormat, read_video, write_video

__all__ = ["VIDEO_FORMATS", "Video", "VideoError", "VideoFormat", "read_video", "write_video"]
