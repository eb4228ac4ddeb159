"""legato.cascade: stages and cascades, run by interchangeable executors.

The main flow::

    base = Stage("base", Denoiser(unet), DDIMScheduler(), steps=25, shape=(3, 8, 16, 16), guidance_scale=4.0)
    sr = Stage("sr-space", Denoiser(sr_unet, "sample"), DDIMScheduler(), steps=10,
               sr=SuperResolution(space=2), batch_size=4)
    cascade = Cascade((base, sr))
    items = [Item(id="a", seed=0, cond=Conditioning(text=emb_a)), ...]
    outputs = LocalExecutor().run(cascade, items)                 # one output per item, in order
    previews = LocalExecutor().run(cascade, items, stop="sr-space")  # the base stage only
    upscaled = LocalExecutor().run(cascade, items, start="sr-space", inputs=previews)
    cascade.save_pretrained("my-cascade"); Cascade.from_pretrained("my-cascade")   # cascade.json + a folder per stage

Each item's noise at each stage comes from ``(item seed, stage index)``: the Ray executors of
legato.pipelines give the same outputs.
"""

from legato.cascade.cascade import (
    Cascade,
    Executor,
    Item,
    LocalExecutor,
    Progress,
    batches,
    check_run,
    run_batch,
)
from legato.cascade.decode import Decode, Encode, LatentUpsample
from legato.cascade.pretrained import CASCADE_FILE, load_cascade, save_cascade
from legato.cascade.stage import DTYPES, Stage, stage_seed
from legato.cascade.weights import require_safetensors

__all__ = [
    "CASCADE_FILE",
    "DTYPES",
    "Cascade",
    "Decode",
    "Encode",
    "Executor",
    "Item",
    "LatentUpsample",
    "LocalExecutor",
    "Progress",
    "Stage",
    "batches",
    "check_run",
    "load_cascade",
    "require_safetensors",
    "run_batch",
    "save_cascade",
    "stage_seed",
]
