"""The main job's gallery (`legato demo`, `legato gallery`): index.html over real job outputs, every link
pointing at a file that is there, every player playing in a browser."""

from html.parser import HTMLParser

import pytest
import yaml

from legato.services.gallery import write_gallery

from . import browser
from .conftest import invoke


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "src" in attrs or "href" in attrs:
            self.tags.append((tag, attrs.get("src") or attrs["href"]))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def main_job_run(models, tmp_path_factory):
    music_model, video_model = models / "music-tiny", models / "video-tiny"
    tmp_path = tmp_path_factory.mktemp("main-job")
    out = tmp_path / "outputs"
    prompt = "<b>a melody of short notes"  # markup in a prompt is shown as text, not run
    specs = {
        "music": {"kind": "music", "model": str(music_model), "output": str(tmp_path / "elsewhere" / "music"),
                  "items": [{"id": "m1", "prompt": prompt, "seed": 1}, {"id": "m2", "prompt": "a low drone"}]},
        "video": {"kind": "video", "model": str(video_model), "soundtrack": str(music_model),
                  "output": str(tmp_path / "elsewhere" / "video"), "items": [{"id": "v1", "prompt": "a camera move over a photo"}]},
    }  # fmt: skip
    paths = []
    for name, spec in specs.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        paths.append(str(path))
    done = invoke(
        "demo", *paths, "--output", str(out)
    )  # --output places the specs' folders under it, by name
    assert done.code == 0, done.stderr
    assert not (tmp_path / "elsewhere").exists()
    return out, paths, prompt


def test_demo_refuses_specs_that_would_share_a_folder_before_any_work(tmp_path):
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"kind": "music", "model": "music-default",
                                        "output": f"{name}/clips", "items": [{"prompt": "a reel"}]}))  # fmt: skip
        paths.append(str(path))
    refused = invoke("demo", *paths, "--output", str(tmp_path / "out"))
    assert refused.code == 2
    assert "share a last name" in refused.stderr
    assert not (tmp_path / "out").exists()


def test_demo_writes_outputs_manifests_and_a_gallery(main_job_run):
    out, paths, prompt = main_job_run
    page = (out / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    kinds = {tag for tag, _ in parser.tags}
    assert {"audio", "img", "video", "a"} <= kinds
    for _, link in parser.tags:
        assert (out / link).is_file(), link
    assert {link for tag, link in parser.tags if tag == "audio"} == {"music/m1.wav", "music/m2.wav"}
    assert "&lt;b&gt;" in page
    assert prompt not in page
    assert prompt in "".join(parser.text)
    again = invoke("demo", *paths, "--output", str(out))  # a second run: nothing regenerated, the same page
    assert "open " + str((out / "index.html").resolve()) in again.stdout
    assert (out / "index.html").read_text() == page
    assert " &middot; made in " in page  # each card's timings from the manifest, said as what they are
    assert "model music-tiny (" in page  # the model by name, then the hash its items were made with


@pytest.mark.skipif(browser.CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_gallery_plays_in_headless_chromium(main_job_run, tmp_path):
    out, _, _ = main_job_run
    seen = browser.inspect(out / "index.html", tmp_path / "gallery.png")
    print(seen)
    assert seen["errors"] == []
    assert sorted(m["src"] for m in seen["media"]) == ["music/m1.wav", "music/m2.wav", "video/v1.mp4"]
    for m in seen["media"]:  # every player decoded its file's metadata: a playable source of the right length
        assert m["ok"], m
        assert m["error"] is None, m
        assert m["duration"] > 0.5, m
    assert seen["images"]
    assert all(i["ok"] for i in seen["images"]), seen["images"]
    shot = tmp_path / "gallery.png"
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    assert pixels.size == (1280, 1600)
    assert max(pixels.getextrema()) - min(pixels.getextrema()) > 100  # a rendered page, not a blank one


def test_gallery_without_jobs_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run a job into"):
        write_gallery(tmp_path)
