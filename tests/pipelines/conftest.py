"""One real local Ray cluster per test session, on loopback, with its own temp dir and auth mode."""

import contextlib
import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    if ray.is_initialized():  # a docs example may have left one behind
        ray.shutdown()
    ray.init(
        num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")),
        _node_ip_address="127.0.0.1", log_to_driver=False,
    )  # fmt: skip
    yield ray
    ray.shutdown()


# --- tiny trained cascades, saved as folders (what from_pretrained and job specs load) --------------------

MUSIC_PROMPTS = ("a melody of short notes", "a low drone")
VIDEO_PROMPTS = ("a camera move over a photo",)


def _music_audio(count: int, sample_rate: int) -> tuple[torch.Tensor, list[str]]:
    """Melodies of harmonic notes and low sustained drones, 1.1 s each, with their captions."""
    from legato.codec.testing import harmonic_notes

    audio, captions = [], []
    t = torch.arange(round(1.1 * sample_rate)) / sample_rate
    for i in range(count):
        audio.append(harmonic_notes(1.1, sample_rate, seed=i))
        f0 = 55 * 2 ** (i % 12 / 12)
        drone = sum(0.5**k * torch.sin(2 * torch.pi * f0 * (k + 1) * t) for k in range(4))
        audio.append((0.4 * drone / drone.abs().max()).float())
        captions += list(MUSIC_PROMPTS)
    return torch.stack(audio)[:, None], captions


@pytest.fixture(scope="session")
def music_model(tmp_path_factory) -> Path:
    """A music cascade (base 16x32 mel -> SR x2 -> 32x64, 1 s windows) trained for a minute; its folder."""
    from legato.codec import SMALL, MelCodec
    from legato.pipelines.music import MusicPipeline
    from legato.pipelines.text import TextEncoder
    from legato.pipelines.training import train_cascade
    from legato.recipes.networks import music_cascade

    torch.set_num_threads(2)
    params, window = SMALL.replace(n_mels=32), 64
    codec = MelCodec(params)
    audio, captions = _music_audio(16, params.sample_rate)
    mels = codec.to_unit(codec.mel(audio))[..., :window] * 2 - 1
    text = TextEncoder()
    cascade = music_cascade(params, window=window, text_dim=text.dim, channels=(16, 32), sr_channels=(16, 32),
                            steps=(12, 6), batch_size=(4, 3))  # fmt: skip
    root = tmp_path_factory.mktemp("music")
    cascade = train_cascade(cascade, mels, text(captions), root / "train", steps=(120, 80), batch_size=8)
    return MusicPipeline(cascade, params, text).save_pretrained(root / "model")


@pytest.fixture(scope="session")
def video_model(tmp_path_factory) -> Path:
    """A video cascade (4 frames of 8 px -> 8 frames -> 16 px) trained on camera moves over photos."""
    import skimage.data

    from legato.pipelines.text import TextEncoder
    from legato.pipelines.training import train_cascade
    from legato.pipelines.video import VideoPipeline
    from legato.recipes.networks import video_cascade
    from legato.video import random_camera_moves

    torch.set_num_threads(2)
    photos = [
        torch.tensor(getattr(skimage.data, n)(), dtype=torch.float32).permute(2, 0, 1) / 255
        for n in ("astronaut", "coffee", "rocket")
    ]
    clips = random_camera_moves(photos, 24, 8, 16, torch.Generator().manual_seed(0), max_shift=0.3) * 2 - 1
    text = TextEncoder()
    cascade = video_cascade(frames=8, size=16, text_dim=text.dim, channels=(16, 32), sr_channels=(8, 16),
                            steps=(8, 4, 4), batch_size=(4, 2, 3))  # fmt: skip
    root = tmp_path_factory.mktemp("video")
    emb = text(list(VIDEO_PROMPTS) * len(clips))
    cascade = train_cascade(cascade, clips, emb, root / "train", steps=(80, 40, 40), batch_size=8)
    return VideoPipeline(cascade, 8.0, text).save_pretrained(root / "model")


@contextlib.contextmanager
def torch_threads(count: int):
    """Run with ``count`` torch threads: byte equality with a Ray stage actor (1 CPU, 1 thread on this
    machine) needs equal thread counts, since kernels split their reductions by thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
