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
