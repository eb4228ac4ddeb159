"""Imported diffusers checkpoints against diffusers' own pipelines, on tiny random-weight folders with the real
classes, layouts and config keys (legato.recipes.checkpoints): the same starting latents, scheduler, steps,
guidance and negative prompt give the same latents and pixels, to 1e-4 of the output range."""

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from legato.cascade import Cascade, Item, LocalExecutor, stage_seed
from legato.diffusion import Conditioning, scheduler_config, scheduler_from_config
from legato.pipelines.checkpoints import from_diffusers, model_index
from legato.pipelines.manifest import read_manifest
from legato.recipes import checkpoints

from .test_ray_executor import local

TOL = 1e-4
SCHEDULERS = ["ddim", "dpm++", "euler"]
PROMPTS = ["a jig on the fiddle", "organ chorale"]
NEGATIVES = ["noise", ""]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return checkpoints.write_all(tmp_path_factory.mktemp("checkpoints"))


def _pipe(cls, folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = cls.from_pretrained(folder, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _items(seeds=(3, 4)):
    return [
        Item(f"{i}", s, prompt=p, negative=n)
        for i, (s, p, n) in enumerate(zip(seeds, PROMPTS, NEGATIVES, strict=False))
    ]


def _close(ours, theirs, what):
    gap = (ours - theirs).abs().max().item()
    span = (theirs.max() - theirs.min()).item()
    assert gap <= TOL * span, f"{what}: {gap:.3g} apart over a range of {span:.3g}"


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_stable_diffusion_equals_diffusers(folders, scheduler):
    from diffusers import StableDiffusionPipeline

    cascade = from_diffusers(folders["stable-diffusion"], steps=[4], guidance=7.5).with_sampling(
        scheduler=scheduler
    )
    assert [s.name for s in cascade.stages] == ["base", "base-decode"]
    items = _items()
    latents = torch.stack(LocalExecutor().run(cascade, items, stop="base-decode"))
    pixels = torch.stack(LocalExecutor().run(cascade, items))
    base = cascade.stages[0]
    pipe = _pipe(
        StableDiffusionPipeline,
        folders["stable-diffusion"],
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.scheduler = scheduler_from_config(scheduler_config(base.scheduler))
    noise = base.starting_noise(base.generators([3, 4], 0))
    kw = dict(
        prompt=PROMPTS,
        negative_prompt=NEGATIVES,
        num_inference_steps=4,
        guidance_scale=7.5,
        height=64,
        width=64,
    )
    _close(latents, pipe(**kw, latents=noise.clone(), output_type="latent").images, "latents")
    ref = pipe(**kw, latents=noise.clone(), output_type="pt").images  # [0, 1]
    _close((pixels + 1) / 2, ref, "pixels")
    assert pixels.shape == (2, 3, 64, 64)
    assert float(pixels.std()) > 0.01


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_sd_to_x4_upscaler_equals_diffusers(folders, scheduler):
    from diffusers import StableDiffusionUpscalePipeline

    cascade = from_diffusers([folders["stable-diffusion"], folders["upscaler"]], steps=[2, 3])
    cascade = cascade.with_sampling(scheduler=scheduler)
    items = _items()
    low = LocalExecutor().run(cascade, items, stop="sr")
    latents = torch.stack(LocalExecutor().run(cascade, items, start="sr", stop="sr-decode", inputs=low))
    pixels = torch.stack(LocalExecutor().run(cascade, items))
    assert pixels.shape == (2, 3, 256, 256)
    index = [s.name for s in cascade.stages].index("sr")
    pipe = _pipe(StableDiffusionUpscalePipeline, folders["upscaler"])
    pipe.scheduler = scheduler_from_config(scheduler_config(cascade.stages[index].scheduler))
    # diffusers draws the low-res image's noise, then the latents, from the generators: give it Legato's
    kw = dict(prompt=PROMPTS, negative_prompt=NEGATIVES, image=(torch.stack(low) + 1) / 2, num_inference_steps=3,
              guidance_scale=9.0, noise_level=20)  # fmt: skip
    gens = lambda: [torch.Generator().manual_seed(stage_seed(s, index)) for s in (3, 4)]  # noqa: E731
    _close(latents, pipe(**kw, generator=gens(), output_type="latent").images, "latents")
    _close((pixels + 1) / 2, pipe(**kw, generator=gens(), output_type="pt").images, "pixels")


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_text_to_video_equals_diffusers(folders, scheduler):
    from diffusers import TextToVideoSDPipeline

    cascade = from_diffusers(folders["text-to-video"], steps=[3], frames=4).with_sampling(scheduler=scheduler)
    items = [Item("a", 3, prompt="a boat at sea", negative="blur")]
    latents = torch.stack(LocalExecutor().run(cascade, items, stop="base-decode"))
    frames = torch.stack(LocalExecutor().run(cascade, items))
    assert frames.shape == (1, 3, 4, 64, 64)
    base = cascade.stages[0]
    pipe = _pipe(TextToVideoSDPipeline, folders["text-to-video"])
    pipe.scheduler = scheduler_from_config(scheduler_config(base.scheduler))
    noise = base.starting_noise(base.generators([3], 0))
    kw = dict(prompt="a boat at sea", negative_prompt="blur", num_inference_steps=3, guidance_scale=9.0,
              num_frames=4, height=64, width=64)  # fmt: skip
    _close(latents, pipe(**kw, latents=noise.clone(), output_type="latent").frames, "latents")
    ref = pipe(**kw, latents=noise.clone(), output_type="pt").frames  # (B, T, C, H, W) in [0, 1]
    _close((frames + 1) / 2, ref.permute(0, 2, 1, 3, 4), "frames")


def test_imported_cascade_saves_and_loads_with_the_same_outputs(folders, tmp_path):
    cascade = from_diffusers([folders["stable-diffusion"], folders["upscaler"]], steps=[2, 2])
    items = _items()
    expected = LocalExecutor().run(cascade, items)
    cascade.save_pretrained(tmp_path / "sd-x4")
    config = json.loads((tmp_path / "sd-x4" / "cascade.json").read_text())
    assert [s.get("step") for s in config["stages"]] == [None, "decode", None, "decode"]
    assert config["stages"][0]["null"] == "prompt"
    assert "text_encoder" in config["stages"][0]
    again = LocalExecutor().run(Cascade.from_pretrained(tmp_path / "sd-x4"), items)
    assert all(torch.equal(a, b) for a, b in zip(expected, again, strict=True))


# The Zeroscope cascade (an Encode and two Decode steps) runs by default; SD -> x4 is a slow test (35 s).
@pytest.mark.parametrize("family", [pytest.param("sd-x4", marks=pytest.mark.slow), "zeroscope-xl"])
def test_ray_executors_run_real_family_cascades_with_each_step_on_its_own_actors(
    folders, ray_cluster, family
):
    from legato.pipelines.ray_executor import RayExecutor, ray_data_run

    if family == "sd-x4":
        cascade = from_diffusers(
            [folders["stable-diffusion"], folders["upscaler"]], steps=[2, 2], batch_size=1
        )
        items = _items()
    else:
        cascade = _zeroscope(folders, steps=[2, 3], batch_size=1)
        items = [Item("a", 3, prompt="a boat at sea", negative="blur"), Item("b", 4, prompt="a storm")]
    expected = local(cascade, items)
    executor = RayExecutor()
    try:
        remote = executor.run(cascade, items)
        # one actor per step: base, its decode, (the refiner's encode,) the second stage, its decode
        assert len(executor.actors(cascade)) == len(cascade.stages)
    finally:
        executor.shutdown()
    assert all(torch.equal(a, b) for a, b in zip(expected, remote, strict=True))
    data = ray_data_run(cascade, items)
    assert all(torch.equal(a, b) for a, b in zip(expected, data, strict=True))


def _zeroscope(folders, **settings):
    """The tiny 576w -> XL cascade: text-to-video frames of 64x64, resized to 96x96 and refined."""
    return from_diffusers([folders["text-to-video"], folders["video-to-video"]], frames=4, refine_size=(96, 96),
                          **settings)  # fmt: skip


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_video_to_video_equals_diffusers(folders, scheduler):
    from diffusers import VideoToVideoSDPipeline

    cascade = _zeroscope(folders, steps=[2, 4]).with_sampling(scheduler=scheduler)
    assert [s.name for s in cascade.stages] == ["base", "base-decode", "sr-encode", "sr", "sr-decode"]
    items = [Item("a", 3, prompt="a boat at sea", negative="blur")]
    run = LocalExecutor().run
    frames = run(cascade, items, stop="sr-encode")  # the 576w stand-in's pixels, (3, 4, 64, 64)
    encoded = run(cascade, items, start="sr-encode", stop="sr", inputs=frames)
    latents = run(cascade, items, start="sr", stop="sr-decode", inputs=encoded)
    out = torch.stack(run(cascade, items, start="sr-decode", inputs=latents))
    assert out.shape == (1, 3, 4, 96, 96)
    index = [s.name for s in cascade.stages].index("sr")
    pipe = _pipe(VideoToVideoSDPipeline, folders["video-to-video"])
    pipe.scheduler = scheduler_from_config(scheduler_config(cascade.stages[index].scheduler))
    # diffusers' own encoding of the frames resized as users resize them for XL (bicubic), handed to it
    # as the 4-channel video it takes as latents
    resized = torch.nn.functional.interpolate(frames[0].permute(1, 0, 2, 3), size=(96, 96), mode="bicubic")
    with torch.no_grad():
        ref_in = pipe.vae.encode(resized.clamp(-1, 1)).latent_dist.mode() * pipe.vae.config.scaling_factor
    _close(encoded[0].permute(1, 0, 2, 3), ref_in, "encoded frames")
    kw = dict(prompt="a boat at sea", negative_prompt="blur", video=ref_in[None], strength=0.6,
              num_inference_steps=4, guidance_scale=15.0)  # fmt: skip
    gen = lambda: torch.Generator().manual_seed(stage_seed(3, index))  # noqa: E731
    _close(latents[0], pipe(**kw, generator=gen(), output_type="latent").frames[0], "latents")
    ref = pipe(**kw, generator=gen(), output_type="pt").frames  # (B, T, C, H, W) in [0, 1]
    _close((out + 1) / 2, ref.permute(0, 2, 1, 3, 4), "frames")


def test_hub_ids_and_other_folders_are_refused_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="huggingface-cli download riffusion/riffusion-model-v1"):
        model_index("riffusion/riffusion-model-v1")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ValueError, match="imports StableDiffusionPipeline"):
        model_index(tmp_path)


def test_cli_imports_a_riffusion_folder_and_generates_music_with_it(folders, tmp_path):
    from PIL import Image

    from legato.codec import read_audio

    from ..cli import assert_clean_error, legato

    done = legato("models", "import", str(folders["stable-diffusion"]), "--name", "riff", "--kind", "music",
                  "--steps", "2", "--size", "64x128", "--into", str(tmp_path / "models"), "--json")  # fmt: skip
    assert done.code == 0, done.stderr
    model = json.loads(done.stdout)["model"]
    assert model["kind"] == "music"
    assert [s["name"] for s in model["stages"]] == ["base", "base-decode"]
    saved = json.loads((tmp_path / "models" / "riff" / "cascade.json").read_text())["metadata"]
    assert (saved["n_iter"], saved["phase"]) == (32, "pghi")  # decoded from integrated phase (docs/codec.md)
    again = legato("models", "import", str(folders["stable-diffusion"]), "--name", "riff", "--into",
                   str(tmp_path / "models"))  # fmt: skip
    assert_clean_error(again, 1, "--force")
    made = legato("generate", "music", "a jig on the fiddle", "--model", str(tmp_path / "models" / "riff"), "--seed", "1",
           "--out", str(tmp_path / "out"), "--negative", "noise", "--steps", "2")  # fmt: skip
    assert made.code == 0, made.stderr
    row = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[-1])
    assert row["item"]["negative"] == "noise"
    audio, rate = read_audio(next((tmp_path / "out").glob("*.wav")))
    assert rate == 44_100
    assert audio.shape[-1] == pytest.approx(1.28 * 44_100, rel=0.01)
    with Image.open(next((tmp_path / "out").glob("*.png"))) as image:
        assert image.mode == "RGB"
        assert 11000 in image.getexif()  # Riffusion's convention
    song = next((tmp_path / "out").glob("*.wav"))
    edited = legato("edit", "music", str(song), "an organ chorale", "--model", str(tmp_path / "models" / "riff"),
                    "--strength", "0.5", "--negative", "noise", "--steps", "4", "--out", str(tmp_path / "e.wav"))  # fmt: skip
    assert edited.code == 0, edited.stderr
    assert read_audio(tmp_path / "e.wav")[0].shape[-1] == pytest.approx(audio.shape[-1], rel=0.02)


def _image_pipeline(folders, tmp_path, scheduler, steps=5):
    from legato.pipelines import ImagePipeline
    from legato.pipelines.checkpoints import import_checkpoint

    path = import_checkpoint(folders["stable-diffusion"], tmp_path / "sd", kind="image", steps=[steps])
    pipe = ImagePipeline.from_pretrained(path, output="tensor")
    pipe.cascade = pipe.cascade.with_sampling(scheduler=scheduler)
    return pipe


def _oracle_latents(pipe, pixels):
    """diffusers' own encoding of ``pixels`` (the posterior's mode, scaled), handed to its pipelines as the
    4-channel "image" they take as latents."""
    with torch.no_grad():
        return pipe.vae.encode(pixels[None]).latent_dist.mode() * pipe.vae.config.scaling_factor


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_img2img_equals_diffusers(folders, tmp_path, scheduler):
    from diffusers import StableDiffusionImg2ImgPipeline

    from legato.pipelines.continuation import window_seed

    ours = _image_pipeline(folders, tmp_path, scheduler)
    source = ours("a lighthouse at dusk", seeds=7)[0]
    edited = ours.edit(source, "a lighthouse in a storm", strength=0.6, seed=2, negative="blurry")
    base = ours.cascade.stages[0]
    pipe = _pipe(StableDiffusionImg2ImgPipeline, folders["stable-diffusion"], safety_checker=None,
                 requires_safety_checker=False)  # fmt: skip
    pipe.scheduler = scheduler_from_config(scheduler_config(base.scheduler))
    gens = lambda: base.generators([window_seed(2, 0)], 0)  # noqa: E731  (the edit's one window)
    kw = dict(prompt="a lighthouse in a storm", negative_prompt="blurry", image=_oracle_latents(pipe, source),
              strength=0.6, num_inference_steps=5, guidance_scale=7.5)  # fmt: skip
    ref = pipe(**kw, generator=gens(), output_type="pt").images[0]
    _close((edited + 1) / 2, ref, "img2img pixels")
    # the latents, through the same calls the edit makes (the cascade's encoder, the base stage's img2img)
    low = ours.cascade.prefix_at(0, source)[None]
    _close(low, kw["image"], "encoded latents")
    latents = base.run(None, Conditioning(), [window_seed(2, 0)], 0, init=low, strength=0.6,
                       prompts=["a lighthouse in a storm"], negatives=["blurry"])  # fmt: skip
    _close(latents, pipe(**kw, generator=gens(), output_type="latent").images, "img2img latents")
    assert (edited - source).abs().max() > 0.05  # it did change the image


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_inpainting_equals_diffusers_and_keeps_the_rest_exactly(folders, tmp_path, scheduler):
    from diffusers import StableDiffusionInpaintPipeline

    from legato.pipelines.continuation import window_seed

    ours = _image_pipeline(folders, tmp_path, scheduler)
    source = ours("a harbour", seeds=5)[0]
    mask = torch.zeros(64, 64)
    mask[16:48, 8:40] = 1  # on the VAE's 8-pixel grid: diffusers' nearest-neighbour resize and Legato's agree
    filled = ours.inpaint(source, "a red boat", mask=mask, seed=3, negative="fog")
    base = ours.cascade.stages[0]
    pipe = _pipe(StableDiffusionInpaintPipeline, folders["stable-diffusion"], safety_checker=None,
                 requires_safety_checker=False)  # fmt: skip
    pipe.scheduler = scheduler_from_config(scheduler_config(base.scheduler))
    latents = _oracle_latents(pipe, source)
    ref = pipe(prompt="a red boat", negative_prompt="fog", image=latents, masked_image_latents=latents,
               mask_image=mask[None, None], num_inference_steps=5, guidance_scale=7.5, height=64, width=64,
               generator=base.generators([window_seed(3, 0)], 0), output_type="pt").images[0]  # fmt: skip
    inside = mask.bool().expand(3, -1, -1)
    _close(((filled + 1) / 2)[inside], ref[inside], "inpainted pixels")
    assert torch.equal(filled[~inside], source[~inside])  # outside the mask: the input, exactly
    assert (filled - source)[inside].abs().max() > 0.05


def test_riffusion_model_edits_inpaints_and_interpolates_with_its_own_encoder(folders, tmp_path):
    from legato.pipelines import MusicPipeline
    from legato.pipelines.checkpoints import import_checkpoint

    model = import_checkpoint(
        folders["stable-diffusion"], tmp_path / "riff", kind="music", steps=[3], size=(64, 128)
    )
    pipe = MusicPipeline.from_pretrained(model)
    assert pipe.text is None  # each stage encodes with the checkpoint's CLIP
    pipe = replace(
        pipe, n_iter=2
    )  # Griffin-Lim at Riffusion's 17,640-point FFT is what would take the time here
    clip = pipe("a jig on the fiddle", seeds=1)[0]
    edited = pipe.edit(clip, "an organ chorale", strength=0.5, seed=2, negative="noise")
    assert edited.audio.shape == clip.audio.shape
    assert (edited.mel - clip.mel).abs().max() > 0.05
    # inpainting in latent space keeps the input's mel exactly outside the region (frames 30-80)
    filled = pipe.inpaint(clip, "a drum", start=0.3, end=0.8, seed=3)
    source = pipe.encode(clip)  # the edit's input, Riffusion's RGB form
    from legato.codec.riffusion import unit_from_pixels

    kept = unit_from_pixels(source)
    assert torch.equal(filled.mel[..., :30], kept[..., :30])
    assert torch.equal(filled.mel[..., 80:], kept[..., 80:])
    assert (filled.mel[..., 30:80] - kept[..., 30:80]).abs().max() > 0.05
    # interpolation mixes the base stage's own embeddings; its ends are the plain generations
    walk = pipe.interpolate(["a jig on the fiddle", "an organ chorale"], seeds=(1, 2), steps=3)
    assert len(walk.clips) == 3
    torch.testing.assert_close(walk.clips[0].mel, clip.mel, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        walk.clips[-1].mel, pipe("an organ chorale", seeds=2)[0].mel, atol=1e-5, rtol=0
    )


def test_cli_imports_zeroscope_576w_to_xl_and_generates_a_video(folders, tmp_path):
    import av

    from ..cli import legato

    done = legato("models", "import", str(folders["text-to-video"]), str(folders["video-to-video"]), "--name", "zs",
                  "--kind", "video", "--steps", "2,2", "--frames", "4", "--refine-size", "96x96", "--strength", "0.5",
                  "--into", str(tmp_path / "models"), "--json")  # fmt: skip
    assert done.code == 0, done.stderr
    stages = json.loads(done.stdout)["model"]["stages"]
    assert [s["name"] for s in stages] == ["base", "base-decode", "sr-encode", "sr", "sr-decode"]
    made = legato("generate", "video", "a boat at sea", "--model", str(tmp_path / "models" / "zs"), "--negative",
                  "blur", "--steps", "2,2", "--out", str(tmp_path / "out"))  # fmt: skip
    assert made.code == 0, made.stderr
    tiled = legato("generate", "video", "a boat at sea", "--model", str(tmp_path / "models" / "zs"), "--negative",
                   "blur", "--steps", "2,2", "--vae-tiling", "--vae-slicing", "--out", str(tmp_path / "tiled"))  # fmt: skip
    assert tiled.code == 0, tiled.stderr
    videos = {}
    for name in ("out", "tiled"):
        with av.open(str(next((tmp_path / name).glob("*.mp4")))) as f:
            videos[name] = np.stack([frame.to_ndarray(format="rgb24") for frame in f.decode(video=0)])
    assert videos["out"].shape == (4, 96, 96, 3)
    # the 96x96 frames' encode and decode ran in 64-pixel tiles (the fixture VAE's), so the random-weight XL
    # stage denoised other latents (tests/pipelines/test_vae_memory.py holds tiles against diffusers')
    assert not np.array_equal(videos["out"], videos["tiled"])
    assert "+vae_tiling=True" in read_manifest(tmp_path / "tiled")[0]["model"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_stages_run_in_that_dtype_close_to_float32(folders, dtype):
    items = [Item("a", 3, prompt="a boat at sea", negative="blur")]
    ref = LocalExecutor().run(from_diffusers(folders["stable-diffusion"], steps=[3]), items)[0]
    cascade = from_diffusers(folders["stable-diffusion"], steps=[3], dtype=dtype)
    assert next(cascade.stages[0].denoiser.parameters()).dtype == getattr(torch, dtype)
    assert next(cascade.stages[1].latents.vae.parameters()).dtype == getattr(torch, dtype)  # the decode too
    out = LocalExecutor().run(cascade, items)[0]
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # measured: bfloat16 0.041, float16 0.005 at most, on pixels of spread 0.34
    assert (out - ref).abs().max() < 0.15
