"""Every command's ``--help`` is complete, and answers without importing torch."""

import subprocess
import sys

import pytest
import typer

from legato.services.cli import app

from .conftest import assert_clean_error, legato


def commands(group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Every command of the tree with its path (typer's own click types: groups have ``commands``)."""
    found = [(path, group)]
    if hasattr(group, "commands"):
        for name, sub in sorted(group.commands.items()):
            found += commands(sub, (*path, name))
    return found


COMMANDS = commands(typer.main.get_command(app))
EXPECTED = {
    ("generate", "music"), ("generate", "video"), ("edit", "music"), ("edit", "video"), ("batch",), ("job", "submit"),
    ("job", "status"), ("job", "logs"), ("job", "stop"), ("job", "list"), ("models", "import"), ("demo",),
    ("gallery",), ("train",), ("distill",), ("serve",), ("recipes", "dataset"), ("recipes", "export"),
    ("recipes", "verifier"), ("recipes", "evaluate"), ("recipes", "vocoder", "data"), ("recipes", "vocoder", "train"),
    ("recipes", "vocoder", "export"),
}  # fmt: skip


def test_the_command_tree_is_complete_and_every_parameter_is_documented():
    leaves = {path for path, cmd in COMMANDS if not hasattr(cmd, "commands")}
    assert leaves == EXPECTED
    for path, cmd in COMMANDS:
        assert (cmd.help or "").strip(), f"legato {' '.join(path)} has no help"
        for param in cmd.params:
            if param.name != "help":
                assert (param.help or "").strip(), f"legato {' '.join(path)} {param.opts}: no help"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "legato")
def test_help_lists_every_option(path):
    result = legato(*path, "--help")
    assert result.code == 0, result.stderr
    assert f"Usage: legato {' '.join(path)}".strip() in " ".join(result.stdout.split())
    cmd = dict(COMMANDS)[path]
    for param in cmd.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in result.stdout, f"{opt} missing from `legato {' '.join(path)} --help`"
    for name in getattr(cmd, "commands", {}):
        assert name in result.stdout


def test_the_command_module_imports_no_torch():
    # --help and `legato models` answer at once because the pipelines load only when a command runs
    code = "import sys, legato.services.cli; assert 'torch' not in sys.modules and 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_usage_errors_exit_2():
    assert legato("nonsense").code == 2
    assert legato("generate", "music").code == 2  # no prompt
    assert legato("generate", "music", "x", "--executor", "slurm").code == 2
    result = legato("generate", "music", "a jig", "--model", "no-such-model")
    assert_clean_error(result, 2, "no-such-model", "legato models")
