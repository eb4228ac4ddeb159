"""A model knows what it was trained on: ``legato models`` lists each bundled model's vocabulary, and
generation warns (the command on stderr and in its JSON, the Python API as a `PromptWarning`) when a prompt
is far from every training caption, naming what the model knows."""

import warnings
from dataclasses import replace

import pytest

from legato.pipelines import MusicPipeline, VideoPipeline
from legato.pipelines.vocabulary import PromptWarning
from legato.recipes.datasets import music, video

from .conftest import legato


def test_models_lists_what_each_bundled_model_knows(cli_env):
    listed = legato("models", "--json", env=cli_env)
    assert listed.code == 0, listed.stderr
    found = {m["name"]: m["vocabulary"] for m in listed.json()["models"]}
    for name in ("music-default", "music-fast"):
        assert found[name]["styles"] == ["chorale", "reel", "jig", "hornpipe"]
        assert found[name]["instruments"] == ["piano", "organ", "violin", "flute"]
    for name in ("video-default", "video-fast"):
        assert "pan right" in found[name]["motions"]
        assert "an astronaut" in found[name]["subjects"]
    assert found["music-tiny"] is None  # a model without a vocabulary file says nothing
    table = legato("models", env=cli_env)
    assert "Knows styles: chorale, reel, jig, hornpipe" in " ".join(table.stdout.split())


def test_generate_warns_on_a_far_prompt_and_keeps_unicode_working(tmp_path, cli_env):
    far, french = "lofi hip hop beat", "une gigue à la flûte ♪"  # a near prompt: see the API test below
    result = legato("generate", "music", far, french, "-m", "music-fast", "--steps", "1", "--no-master", "-f", "wav",
                    "-o", str(tmp_path / "out"), "--json", env=cli_env)  # fmt: skip
    assert result.code == 0, result.stderr
    summary = result.json()
    assert len(summary["written"]) == 2  # every prompt is generated, the far one too
    message = summary["warnings"][0]  # the French one may be far for an English text encoder, and still made
    assert f"prompt {far!r} is far from everything this model was trained on" in message
    assert "styles: chorale, reel, jig, hornpipe; instruments: piano, organ, violin, flute" in message
    assert f"warning: {message}" in result.stderr  # and said where a person reads it


def test_the_python_api_warns_with_a_prompt_warning(models):
    pipe = replace(MusicPipeline.from_pretrained(models / "music-tiny", mastering=None),
                   vocabulary=music.vocabulary())  # fmt: skip
    with pytest.warns(PromptWarning, match=r"'heavy metal guitar solo' is far .* instruments: piano"):
        pipe(["heavy metal guitar solo"], seeds=[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PromptWarning)
        pipe(["a jig on fiddle, fast tempo"], seeds=[0])  # near the captions: no warning
    clips = VideoPipeline.from_pretrained(models / "video-tiny")
    clips = replace(clips, vocabulary=video.vocabulary())
    with pytest.warns(PromptWarning, match=r"'fireworks at night' is far .* subjects: a cat"):
        clips(["fireworks at night"], seeds=[0])
