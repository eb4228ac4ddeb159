"""Probes of a video base stage's motion, with no verifier: does it read the motion words, do its pans slide?

::

    legato recipes evaluate video --probe                # 10 minutes on a 2-core CPU

`motion_probe` compares the base stage's training loss on real clips under their own caption and under
another motion's (a stage that has bound the words to the motions predicts worse under the wrong words);
`pan_drift` measures which way the base stage's samples of pan captions slide (`horizontal_drift`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from legato.cascade import Cascade, Item, LocalExecutor
from legato.diffusion import Conditioning, VPSchedule
from legato.pipelines.text import TextEncoder
from legato.pipelines.training import stage_objective
from legato.recipes.datasets import Dataset
from legato.recipes.datasets.video import MOTIONS, OPPOSITE, caption, speed_of
from legato.video.metrics import horizontal_drift

PROBE_LEVELS = (600, 800, 900)
ANOTHER = {"pan left": "zoom in", "pan right": "zoom out", "zoom in": "pan left", "zoom out": "pan right",
           "rotate": "ball", "ball": "rotate"}  # fmt: skip


@torch.no_grad()
def motion_probe(
    cascade: Cascade,
    split: Dataset,
    text: TextEncoder,
    *,
    items: int = 40,
    levels: tuple[int, ...] = PROBE_LEVELS,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, float]:
    """Does a video cascade's base stage read the motion words of a prompt? Its training loss on ``items``
    real clips of ``split`` (drawn by the seed) with their own captions, against the same clips and noise
    with the caption of ``another motion`` (`ANOTHER`, same photo and speed), of the ``opposite direction``
    (`OPPOSITE`: the pans and zooms among them) and with ``no prompt``. Returns each one's mean relative
    loss increase over the noise levels ``levels`` (0.05: 5% higher loss than with the clip's own caption).

    A base stage that has bound the words to the motions they name predicts a clip worse under another
    motion's caption; under the opposite direction's only if it also knows which way its motion goes."""
    stage = cascade.stages[0]
    network, schedule = stage.denoiser.network, VPSchedule.from_scheduler(stage.scheduler)
    objective = stage_objective(stage)
    order = torch.randperm(len(split.samples), generator=torch.Generator().manual_seed(seed))[:items]
    subjects = split.meta["attributes"]["subject"]
    rows = [(int(split.labels["subject"][i]), MOTIONS[int(split.labels["motion"][i])],
             speed_of(split.captions[i])) for i in order.tolist()]  # fmt: skip
    swapped = {
        "another motion": (ANOTHER, list(range(len(rows)))),
        "opposite direction": (OPPOSITE, [k for k, (_, m, _) in enumerate(rows) if m in OPPOSITE]),
    }
    x0 = cascade.downsample(0, split.samples[order])
    own = split.text[order]
    prompts = {"no prompt": (Conditioning(text=own).null().text.expand_as(own), list(range(len(rows))))}
    for name, (motion, keep) in swapped.items():
        embedded = text([caption(subjects[rows[k][0]], motion[rows[k][1]], rows[k][2]) for k in keep])
        prompts[name] = (torch.zeros_like(own).index_copy_(0, torch.tensor(keep), embedded), keep)

    def losses(embeddings: Tensor, level: int) -> Tensor:
        out = []
        for start in range(0, len(x0), batch_size):  # the same noise for every prompt: a paired comparison
            generator = torch.Generator().manual_seed(seed * 1000 + level * 7 + start)
            out.append(objective.loss(network, schedule, x0[start : start + batch_size],
                                      Conditioning(text=embeddings[start : start + batch_size]), generator,
                                      timestep_range=(level, level)))  # fmt: skip
        return torch.cat(out)

    result = {}
    for level in levels:
        base = losses(own, level)
        for name, (embeddings, keep) in prompts.items():
            ratio = (losses(embeddings, level)[keep] / base[keep]).mean().item() - 1
            result[name] = result.get(name, 0.0) + ratio / len(levels)
    return result


PANS = {"pan left": 1, "pan right": -1}  # which way a pan's content slides (`horizontal_drift`'s sign)


@torch.no_grad()
def pan_drift(cascade: Cascade, split: Dataset, *, items: int = 24, seed: int = 0,
              threshold: float = 0.5) -> dict[str, dict[str, float]]:  # fmt: skip
    """How ``items`` real pans of ``split`` (at the base stage's resolution) and the base stage's samples of
    their captions (seed = row) slide: the fraction whose `horizontal_drift` goes the caption's way by more
    than ``threshold`` pixels a frame, and their mean drift in the caption's direction. A readout of motion
    that needs no verifier: a base stage whose frames change without sliding drifts near 0 pixels."""
    motions = [MOTIONS[int(m)] for m in split.labels["motion"]]
    pans = [i for i, motion in enumerate(motions) if motion in PANS]
    order = torch.randperm(len(pans), generator=torch.Generator().manual_seed(seed))[:items].tolist()
    rows = [pans[k] for k in order]
    way = torch.tensor([PANS[motions[i]] for i in rows], dtype=torch.double)
    real = cascade.downsample(0, split.samples[rows])
    work = [Item(f"{k:04d}", k, Conditioning(text=split.text[i])) for k, i in enumerate(rows)]
    generated = torch.stack(LocalExecutor().run(cascade, work, stop=1))
    result = {}
    for name, clips in (("real", real), ("generated", generated)):
        along = horizontal_drift((clips + 1) / 2) * way
        result[name] = {
            "right way": (along > threshold).double().mean().item(),
            "px per frame": along.mean().item(),
        }
    return result
