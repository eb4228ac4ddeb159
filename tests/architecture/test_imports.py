"""The dependency arrows of docs/architecture.md, enforced by parsing every import of every member.

services  ->  recipes  ->  pipelines  ->  cascade  ->  diffusion
   |                          ^   |                       ^
   +--------------------------+   +-> video --------------+
                                  +-> codec

Nothing but services imports recipes: what a user's program runs never loads the code that built the
bundled models.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = {
    "codec": ROOT / "packages/codec/src/legato/codec",
    "diffusion": ROOT / "packages/diffusion/src/legato/diffusion",
    "video": ROOT / "packages/video/src/legato/video",
    "cascade": ROOT / "packages/cascade/src/legato/cascade",
    "pipelines": ROOT / "pipelines/src/legato/pipelines",
    "recipes": ROOT / "recipes/src/legato/recipes",
    "services": ROOT / "services/src/legato/services",
}
# What each member may import of Legato (itself always). Everything else is a wrong arrow.
ALLOWED = {
    "codec": set(),
    "diffusion": set(),
    # video -> codec: a video's soundtrack is a codec waveform, muxed with codec's atomic writer. An arrow
    # beyond ARCHITECTURE.md's diagram, kept because the alternative is a second atomic writer in video.
    "video": {"diffusion", "codec"},
    "cascade": {"diffusion"},
    "pipelines": {"codec", "diffusion", "video", "cascade"},
    # recipes builds the bundled models with everything below it; only the command line runs it.
    "recipes": {"codec", "diffusion", "video", "cascade", "pipelines"},
    # services -> codec: the gallery page is written with codec's atomic writer (the same reason as video's).
    "services": {"pipelines", "recipes", "codec"},
}
# Ray is wired in only where docs/architecture.md puts it (recipes train through pipelines' Ray Train).
RAY_ALLOWED = {"pipelines", "services"}


def legato_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every absolute import in a file (``import x.y`` and ``from x.y import z``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports stay inside a member
                continue
            if node.module == "legato":  # from legato import codec
                found += [(node.lineno, f"legato.{alias.name}") for alias in node.names]
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def violations(member: str, root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        for line, module in legato_imports(path):
            parts = module.split(".")
            where = f"{path.relative_to(ROOT)}:{line}"
            if parts[0] == "legato":
                target = parts[1] if len(parts) > 1 else ""
                if target != member and target not in ALLOWED[member]:
                    bad.append(f"{where}: legato.{member} must not import {module}")
            elif parts[0] == "ray" and member not in RAY_ALLOWED:
                bad.append(f"{where}: legato.{member} must not import ray (Ray lives in pipelines/services)")
    return bad


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_imports_follow_the_architecture(member):
    root = MEMBERS[member]
    assert root.is_dir(), f"{root} is missing"
    assert violations(member, root) == []


def test_no_init_at_the_namespace_root():
    for root in MEMBERS.values():
        assert not (root.parent / "__init__.py").exists(), (
            "legato is a PEP 420 namespace: no legato/__init__.py"
        )
        assert (root / "py.typed").exists()
        assert (root / "__init__.py").exists()


def test_checker_catches_a_wrong_arrow(tmp_path):
    # The check itself must fire: an upward import from codec into pipelines, and Ray in cascade.
    codec = tmp_path / "codec"
    codec.mkdir()
    (codec / "bad.py").write_text("import os\nfrom legato.pipelines import x\nfrom legato import video\n")
    cascade = tmp_path / "cascade"
    cascade.mkdir()
    (cascade / "bad.py").write_text("import ray.data\nfrom legato.diffusion import y\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert len(violations("codec", codec)) == 2
        assert [v.split(": ", 1)[1] for v in violations("cascade", cascade)] == [
            "legato.cascade must not import ray (Ray lives in pipelines/services)"
        ]
    finally:
        ROOT = saved
