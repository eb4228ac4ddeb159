"""Decoding in tiles and slices (`Cascade.with_vae`): the memory a big decode asks for, on the SD base -> x4
upscaler cascade, whose 64x64 latents decode to 256x256 pixels (past the fixture VAE's own 64-pixel tile, as
the real x4 upscaler's 2048-pixel outputs are past its 512), on Wan's and LTX's video VAEs and Stable Audio's
Oobleck (along time). Held against diffusers' pipelines with the VAE tiling, as their users turn it on."""

import pickle

import pytest
import torch

from legato.cascade import Cascade, Item, LocalExecutor, stage_seed
from legato.codec import SMALL
from legato.diffusion import scheduler_config, scheduler_from_config
from legato.diffusion.errors import DiffusionError
from legato.pipelines.checkpoints import from_diffusers
from legato.recipes import checkpoints, dit_checkpoints
from legato.recipes.networks import music_cascade

from .test_checkpoints import NEGATIVES, PROMPTS, _close, _items, _pipe


@pytest.fixture(scope="module")
def cascade(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae-memory")
    folders = [checkpoints.stable_diffusion(root / "sd"), checkpoints.upscaler(root / "x4")]
    return from_diffusers(folders, steps=[2, 2]), folders


def _decodes(cascade: Cascade, latents: torch.Tensor, items) -> tuple[torch.Tensor, int]:
    """The cascade's last step on ``latents``, and how many times its decoder network ran."""
    decoder = cascade.stages[-1].latents.vae.decoder
    calls = []
    hook = decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        pixels = LocalExecutor().run(cascade, items, start="sr-decode", inputs=list(latents))
    finally:
        hook.remove()
    return torch.stack(pixels), len(calls)


def test_tiles_and_slices_decode_as_diffusers_does(cascade):
    from diffusers import StableDiffusionUpscalePipeline

    cascade, (_, x4) = cascade
    items = _items()
    low = LocalExecutor().run(cascade, items, stop="sr")
    latents = torch.stack(LocalExecutor().run(cascade, items, start="sr", stop="sr-decode", inputs=low))
    assert latents.shape == (2, 4, 64, 64)
    whole, whole_calls = _decodes(cascade, latents, items)
    sliced, sliced_calls = _decodes(cascade.with_vae(slicing=True), latents, items)
    tiled, tiled_calls = _decodes(cascade.with_vae(tiling=True), latents, items)
    # one decoder pass for the batch; one an item; 36 overlapping 16x16-latent tiles (6x6, stride 12), each batched
    assert (whole_calls, sliced_calls, tiled_calls) == (1, 2, 36)
    _close(sliced, whole, "sliced against whole")
    assert 0 < (tiled - whole).abs().mean() < 0.05, "tiles blend at their seams: close, not equal"
    assert cascade.stages[-1].latents.vae.use_tiling is True  # the last call's, set at every call
    _decodes(cascade, latents, items)
    assert cascade.stages[-1].latents.vae.use_tiling is False  # the shared VAE follows each cascade's setting

    index = [s.name for s in cascade.stages].index("sr")
    pipe = _pipe(StableDiffusionUpscalePipeline, x4)
    pipe.scheduler = scheduler_from_config(scheduler_config(cascade.stages[index].scheduler))
    pipe.vae.enable_tiling()
    gens = [torch.Generator().manual_seed(stage_seed(s, index)) for s in (3, 4)]
    ref = pipe(prompt=PROMPTS, negative_prompt=NEGATIVES, image=(torch.stack(low) + 1) / 2,
               num_inference_steps=2, guidance_scale=9.0, noise_level=20, generator=gens, output_type="pt")  # fmt: skip
    _close((tiled + 1) / 2, ref.images, "tiled pixels against diffusers' tiled VAE")


def test_tiling_travels_to_workers_and_folders_and_is_refused_without_a_vae(cascade, tmp_path):
    cascade, _ = cascade
    tiled = cascade.with_vae(tiling=True, slicing=True)
    sent = pickle.loads(pickle.dumps(tiled))  # what a Ray actor receives
    saved = Cascade.from_pretrained(tiled.save_pretrained(tmp_path / "tiled"))
    for c in (sent, saved):
        assert [(s.latents.tiling, s.latents.slicing) for s in c.stages if hasattr(s, "latents")] == [
            (True, True),
            (True, True),
        ]
    assert not cascade.stages[-1].latents.tiling  # with_vae makes a new cascade
    assert tiled.with_vae(slicing=False).stages[-1].latents.tiling  # None keeps the setting
    pixel_model = music_cascade(SMALL.replace(n_mels=32), window=64, text_dim=8, channels=(8, 16),
                                sr_channels=(8, 16), steps=(2, 2), batch_size=(4, 4))  # fmt: skip
    with pytest.raises(DiffusionError, match=r"no autoencoder.*leave them off"):
        pixel_model.with_vae(tiling=True)
    assert pixel_model.with_vae(tiling=False).stages == pixel_model.stages  # nothing to turn off


def _tiled(cascade: Cascade, items) -> torch.Tensor:
    """The outputs of ``cascade`` (tiling on), checked to differ from its outputs with tiling off."""
    tiled = torch.stack(LocalExecutor().run(cascade, items))
    whole = torch.stack(LocalExecutor().run(cascade.with_vae(tiling=False), items))
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() > 1e-4  # the tiles were used
    return tiled


# frame size, tile and stride in pixels: tiles 2 latents wide, 1 apart (the real Wan's: 256 and 192; LTX's: 512
# and 448). Tile sizes are the autoencoder's own, set on it as in diffusers.
VIDEO_TILES = {"wan": (32, 16, 8), "ltx": (128, 64, 32)}


@pytest.mark.parametrize("family", sorted(VIDEO_TILES))
def test_video_vaes_decode_in_tiles_as_diffusers_pipelines_do(tmp_path, family):
    from diffusers import LTXPipeline, WanPipeline

    size, tile, stride = VIDEO_TILES[family]
    folder = getattr(dit_checkpoints, family)(tmp_path / family)
    cascade = from_diffusers(folder, steps=[2], guidance=5.0, size=(size, size), frames=9)
    cascade = cascade.with_vae(tiling=True)
    tiles = {f"tile_sample_{kind}_{axis}": n for kind, n in (("min", tile), ("stride", stride))
             for axis in ("height", "width")}  # fmt: skip
    cascade.stages[-1].latents.vae.enable_tiling(**tiles)
    tiled = _tiled(cascade, [Item("a", 3, prompt="a cat playing piano", negative="blurry")])
    base = cascade.stages[0]
    pipe = _pipe(WanPipeline if family == "wan" else LTXPipeline, folder)
    pipe.scheduler = scheduler_from_config(scheduler_config(base.scheduler))
    pipe.vae.enable_tiling(**tiles)
    noise = base.starting_noise(base.generators([3], 0))
    if family == "ltx":
        noise = LTXPipeline._pack_latents(noise, 1, 1)  # its tokens
    ref = pipe(prompt=["a cat playing piano"], negative_prompt=["blurry"], num_inference_steps=2, guidance_scale=5.0,
               height=size, width=size, num_frames=9, latents=noise, output_type="pt").frames  # fmt: skip
    _close((tiled + 1) / 2, ref.permute(0, 2, 1, 3, 4), f"tiled frames against diffusers' tiled {family} VAE")


def test_stable_audio_decodes_in_time_tiles_as_diffusers_pipeline_does(tmp_path):
    from diffusers import StableAudioPipeline

    folder = dit_checkpoints.stable_audio(tmp_path / "stable-audio")
    cascade = from_diffusers(folder, steps=[3], guidance=7.0).with_vae(tiling=True)
    vae = cascade.stages[-1].latents.vae
    # 16 latent frames in tiles of 8 overlapping by 2 on each side (the real decoder's: 512 and 64)
    vae.tile_latent_min_length, vae.tile_latent_overlap = 8, 2
    tiled = _tiled(cascade, [Item("a", 3, prompt="rain on wood", negative="blurry")])
    assert tiled.shape == (1, 2, 16 * 2048)
    pipe = _pipe(StableAudioPipeline, folder)
    pipe.vae.enable_tiling()
    pipe.vae.tile_latent_min_length, pipe.vae.tile_latent_overlap = 8, 2
    base = cascade.stages[0]
    ref = pipe(prompt=["rain on wood"], negative_prompt=["blurry"], num_inference_steps=3, guidance_scale=7.0,
               latents=base.starting_noise(base.generators([3], 0)),
               generator=[torch.Generator().manual_seed(stage_seed(3, 0))], output_type="pt").audios  # fmt: skip
    _close(tiled, ref, "tiled audio against diffusers' tiled Oobleck decoder")
