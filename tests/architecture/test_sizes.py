"""Small modules, each named for what it holds: no source file over 400 lines, and the runtime (`pipelines`)
small enough for a newcomer to follow a prompt to its files (docs/architecture.md): 2,107 lines once the
recipes moved out (issue 40), about 2,450 with the job guarantees of issue 41 (manifest, lock, Ray lifecycle)."""

from pathlib import Path

import pytest

from .test_imports import MEMBERS

LIMIT = 400
PIPELINES_LIMIT = (
    3_200  # 2,745 after issue 42; issue 43 adds importing diffusers checkpoints (checkpoints.py)
)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_no_source_file_is_over_400_lines(member):
    long = {
        str(p.relative_to(MEMBERS[member])): lines(p)
        for p in MEMBERS[member].rglob("*.py")
        if lines(p) > LIMIT
    }
    assert long == {}, f"split these by what they hold: {long}"


def test_the_runtime_stays_small_enough_to_read():
    total = sum(lines(p) for p in MEMBERS["pipelines"].rglob("*.py"))
    assert total <= PIPELINES_LIMIT, (
        f"legato.pipelines has {total} lines; training-only code goes to legato.recipes"
    )
