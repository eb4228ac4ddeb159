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
