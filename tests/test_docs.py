"""Every ```python example in README.md and docs/*.md runs, each in a fresh temporary folder."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def examples() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for i, match in enumerate(FENCE.finditer(text)):
            line = text[: match.start()].count("\n") + 2
            found.append((f"{doc.relative_to(ROOT)}:{line}#{i}", match.group(1)))
    return found


EXAMPLES = examples()


def test_docs_have_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("code", [code for _, code in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc example>", "exec"), {"__name__": "__doc_example__"})
    assert os.getcwd() == str(tmp_path)


LINK = re.compile(r"\]\((\.\./[^)#]+)\)(?: `([A-Za-z_][\w.]*)`)?")


def test_the_architecture_routes_links_name_files_and_functions_that_exist():
    """docs/architecture.md walks a prompt to its files hop by hop: every link opens a file of the checkout,
    and the function or class named after it is defined there (a rename that forgets the doc fails here)."""
    doc = ROOT / "docs" / "architecture.md"
    found = LINK.findall(doc.read_text())
    assert len(found) >= 20
    for target, name in found:
        path = (doc.parent / target).resolve()
        assert path.is_file(), target
        source = path.read_text()
        for part in name.split(".") if name else []:
            assert re.search(rf"^\s*(def|class) {re.escape(part)}\b", source, re.MULTILINE), (
                f"{name} in {target}"
            )


BASH = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.slow  # a Ray head and a Ray job: 40 s (scripts/test -m slow)
def test_the_local_cluster_commands_of_ray_md_work_as_written(tmp_path):
    """docs/ray.md's local cluster, with the pinned Ray: start a head, run a job through it from here and on
    it, stop it. Only the ports are changed (to free ones) and the job spec is a tiny model's."""
    import socket
    import subprocess
    import sys
    import tempfile

    import yaml

    from legato.codec import SMALL
    from legato.pipelines import MusicPipeline, TextEncoder
    from legato.recipes.networks import music_cascade

    text = (ROOT / "docs" / "ray.md").read_text()
    block = next(b for b in BASH.findall(text) if "ray start --head" in b)
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(str(s.getsockname()[1]))
    script = block.replace("6379", ports[0]).replace("8265", ports[1])
    params = SMALL.replace(n_mels=32)
    cascade = music_cascade(
        params, window=64, text_dim=384, channels=(8, 16), sr_channels=(8, 16), steps=(2, 2)
    )
    model = MusicPipeline(cascade, params, TextEncoder()).save_pretrained(tmp_path / "model")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({
        "kind": "music", "model": str(model), "output": str(tmp_path / "out"), "formats": ["wav"],
        "items": [{"prompt": "a jig", "seed": 0}, {"prompt": "a reel", "seed": 1}],
    }))  # fmt: skip
    short = tempfile.mkdtemp(prefix="rd", dir="/tmp")  # Ray's socket paths must stay short
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp_path), RAY_TMPDIR=short, PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 written" in done.stdout  # legato batch through the head's stage actors
    assert "2 already there" in done.stdout  # and the same spec submitted to the cluster finds them
    assert (tmp_path / ".ray" / "auth_token").is_file()  # token authentication was on
