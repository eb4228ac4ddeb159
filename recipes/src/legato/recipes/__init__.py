"""legato.recipes: what builds the bundled models — datasets, recipes, training and export, verifiers,
evaluation, the vocoder. It imports `legato.pipelines` and everything below; nothing imports it: a user's
program runs the models it built, never the recipes.

The main flow (the `legato` command; each step resumes where it stopped)::

    legato recipes dataset music data/music                    # legato.recipes.datasets: real material, offline
    legato train music --data data/music --runs runs/music     # legato.recipes.train: each stage, then distil
    legato recipes export music --runs runs/music --models models   # legato.recipes.export: <kind>-default/-fast
    legato recipes verifier music --data data/music --out models/verifiers/music
    legato recipes evaluate music --items 120                  # legato.recipes.evaluate: the quality table

`legato.recipes.catalog.RECIPES` holds each cascade's recipe as data (architecture, steps, batch sizes,
distillation rounds, sampling); the training itself is the one driver every fine-tune uses,
`legato.pipelines.training`. recipes/docs/history.md is the lab notebook: how the shipped models came to be.
"""

from legato.recipes.catalog import RECIPES, Recipe
from legato.recipes.export import assemble, export
from legato.recipes.train import train_stage

__all__ = ["RECIPES", "Recipe", "assemble", "export", "train_stage"]
