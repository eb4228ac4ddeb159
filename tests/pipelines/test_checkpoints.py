"""Imported diffusers checkpoints against diffusers' own pipelines, on tiny random-weight folders with the real
classes, layouts and config keys (legato.recipes.checkpoints): the same starting latents, scheduler, steps,
guidance and negative prompt give the same latents and pixels, to 1e-4 of the output range."""

import json
import warnings

import pytest
import torch

import legato.video  # noqa: F401  (registers diffusers' UNet3DConditionModel)
from legato.cascade import Cascade, Item, LocalExecutor, stage_seed
from legato.diffusion import scheduler_config, scheduler_from_config
from legato.pipelines.checkpoints import from_diffusers, model_index
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


def test_ray_executors_run_the_sd_x4_cascade_with_decode_on_its_own_actors(folders, ray_cluster):
    from legato.pipelines.ray_executor import RayExecutor, ray_data_run

    cascade = from_diffusers([folders["stable-diffusion"], folders["upscaler"]], steps=[2, 2], batch_size=1)
    items = _items()
    expected = local(cascade, items)
    executor = RayExecutor()
    try:
        remote = executor.run(cascade, items)
        assert len(executor.actors(cascade)) == 4  # base, its decode, sr, its decode: one actor each
    finally:
        executor.shutdown()
    assert all(torch.equal(a, b) for a, b in zip(expected, remote, strict=True))
    data = ray_data_run(cascade, items)
    assert all(torch.equal(a, b) for a, b in zip(expected, data, strict=True))


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
    again = legato("models", "import", str(folders["stable-diffusion"]), "--name", "riff", "--into",
                   str(tmp_path / "models"))  # fmt: skip
    assert_clean_error(again, 1, "--force")
    made = legato("generate", "music", "a jig on the fiddle", "--model", str(tmp_path / "models" / "riff"), "--seed", "1",
           "--out", str(tmp_path / "out"))  # fmt: skip
    assert made.code == 0, made.stderr
    audio, rate = read_audio(next((tmp_path / "out").glob("*.wav")))
    assert rate == 44_100
    assert audio.shape[-1] == pytest.approx(1.28 * 44_100, rel=0.01)
    with Image.open(next((tmp_path / "out").glob("*.png"))) as image:
        assert image.mode == "RGB"
        assert 11000 in image.getexif()  # Riffusion's convention
