"""Both console programs answer --help and --version, and refuse unknown commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cte.cli
import stiscube.cli
from stores._version import __version__

PROGRAMS = {"stiscube": stiscube.cli.main, "cte": cte.cli.main}


@pytest.mark.parametrize("name", PROGRAMS)
def test_version_and_help(name, capsys):
    main = PROGRAMS[name]
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"{name} {__version__}"
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("name", PROGRAMS)
def test_unknown_subcommand_is_a_usage_error(name, capsys):
    with pytest.raises(SystemExit) as exc:
        PROGRAMS[name](["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", PROGRAMS)
def test_console_scripts_are_installed(name):
    exe = Path(sys.executable).with_name(name)  # installed beside the interpreter
    assert exe.exists(), f"console script {name!r} is not installed in {exe.parent}"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{name} {__version__}"
