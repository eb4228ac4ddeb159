"""The online service on imported diffusers checkpoints (legato models import): a Riffusion-style music model
and a text-to-video model, each with its VAE decode as its own Serve deployment and its own CLIP encoder, on a
real local Ray cluster over HTTP on loopback; negative prompts travel with the request, and the server's
``vae_tiling`` (``legato serve --vae-tiling``) reaches the decode's replicas."""

import io
import os
from dataclasses import replace

import av
import numpy as np
import pytest
import torch

from legato.services.serve import main
from legato.services.serve.app import with_vae
from legato.services.serve.client import Client
from legato.services.serve.stages import StageDeployment

from .test_serve import decode_audio, free_port


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from legato.pipelines.checkpoints import import_checkpoint
    from legato.recipes import checkpoints

    root = tmp_path_factory.mktemp("imported")
    sd = checkpoints.stable_diffusion(root / "sd")
    t2v = checkpoints.text_to_video(root / "t2v")
    return {
        "music": import_checkpoint(sd, root / "riff", kind="music", steps=[2], size=(64, 128)),
        "video": import_checkpoint(t2v, root / "clips", kind="video", steps=[2], frames=4),
    }


@pytest.fixture(scope="module")
def client(imported, tmp_path_factory):
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")),
             _node_ip_address="127.0.0.1", log_to_driver=False)  # fmt: skip
    try:
        url = main("127.0.0.1", free_port(), models=imported, blocking=False, vae_tiling=True,
                   jobs_dir=tmp_path_factory.mktemp("jobs"))  # fmt: skip
        yield Client(url, timeout=120)
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.mark.slow  # a Serve app of its own: about a minute on 2 cores
def test_imported_checkpoints_are_served_with_negative_prompts(client, imported):
    from legato.pipelines import MusicPipeline

    health = client.health()
    assert health["music"]["stages"] == ["base"]  # the sampling stages; the decode steps are deployments too
    assert health["music"]["vae"] == health["video"]["vae"] == {"tiling": True, "slicing": False}
    assert health["music"]["sample_rate"] == 44_100
    job = client.music(prompt="a jig on the fiddle", seed=3, negative="noise", steps=[2], master=False)
    assert job["status"] == "done", job
    audio, rate = decode_audio(client.download(job["files"][0]["url"]))
    assert rate == 44_100
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the replicas' thread count
    try:
        whole = MusicPipeline.from_pretrained(imported["music"], mastering=None)
        pipe = replace(whole, cascade=whole.cascade.with_vae(tiling=True))  # as the server was started
        local = pipe(["a jig on the fiddle"], seeds=[3], negative="noise")[0]
        plain = pipe(["a jig on the fiddle"], seeds=[3])[0]
        untiled = whole(["a jig on the fiddle"], seeds=[3], negative="noise")[0]
    finally:
        torch.set_num_threads(before)
    assert np.abs(audio - local.audio.numpy()).max() <= 1.5 / 32768  # equal up to 16-bit rounding
    assert np.abs(audio - plain.audio.numpy()).max() > 0.01  # the negative prompt did reach the stage
    # 64x128 pixels are 8x16 latents, past the fixture VAE's 8-latent tile: the decode replica did tile
    assert np.abs(audio - untiled.audio.numpy()).max() > 1e-3
    video = client.video(prompt="a boat at sea", seed=1, negative="blur")
    assert video["status"] == "done", video
    with av.open(io.BytesIO(client.download(video["files"][0]["url"]))) as f:
        frames = [frame.to_ndarray(format="rgb24") for frame in f.decode(video=0)]
    assert len(frames) == 4
    assert frames[0].shape == (64, 64, 3)


def test_vae_settings_reach_the_decode_replicas_without_a_cluster(imported):
    """What ``build_app`` hands the stage deployments, checked on the class itself (the HTTP path and /healthz:
    the slow test above): a latent model's decode replica tiles; nothing asked, nothing sent."""
    from legato.pipelines.folders import load_pipeline_cascade

    cascades = {k: load_pipeline_cascade(p, k, "cpu")[0] for k, p in imported.items()}
    assert with_vae(dict(cascades), imported, tiling=None, slicing=None) == {}  # nothing asked: nothing sent
    vae = with_vae(cascades, imported, tiling=True, slicing=None)
    assert vae == {kind: {"tiling": True, "slicing": None} for kind in imported}
    index = len(cascades["music"].stages) - 1  # the decode
    assert cascades["music"].stages[index].latents.tiling
    replica = StageDeployment.func_or_class(str(imported["music"]), "music", index, "cpu", 1, vae["music"])
    assert replica.worker.cascade.stages[index].latents.tiling
    assert (
        not StageDeployment.func_or_class(str(imported["music"]), "music", index, "cpu", 1)
        .worker.cascade.stages[index]
        .latents.tiling
    )
