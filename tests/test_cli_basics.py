"""Both console programs answer --help and --version, and refuse unknown commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cte.cli
import stiscube.cli
from stores import __version__

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


# -- progress: a bar on a terminal, log lines otherwise, nothing with --quiet ----------------
def _ingest(tmp_path, *extra, tty: bool) -> str:
    """stderr of `stiscube ingest --simulation` run with stderr a terminal or a pipe."""
    import os
    import pty

    from stiscube.datasets.simulate import simulate_darks

    if not (tmp_path / "sim").exists():
        simulate_darks(tmp_path / "sim", n_periods=2, frames_per_period=3, shape=(32, 24), seed=1)
    db = tmp_path / f"db{len(list(tmp_path.glob('db*')))}"
    argv = [sys.executable, "-m", "stiscube.cli", "ingest", str(db), "--simulation",
            str(tmp_path / "sim"), *extra]
    if not tty:
        proc = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)
        return proc.stderr
    leader, follower = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a window
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_log_lines_otherwise_none_when_quiet(tmp_path):
    on_tty = _ingest(tmp_path, tty=True)
    assert "ingest periods" in on_tty and "step/s" in on_tty and "task" in on_tty
    # a tqdm bar, not log lines
    assert "|" in on_tty and "INFO stores.common.progress" not in on_tty
    piped = _ingest(tmp_path, tty=False)
    assert "INFO stores.common.progress: ingest periods: 1 (1/2)" in piped
    assert "INFO stores.common.progress: period 2: 100% of" in piped
    assert "\r" not in piped  # no bar drawn into a file or pipe
    assert _ingest(tmp_path, "--quiet", tty=False) == ""
    assert "|" not in _ingest(tmp_path, "-q", tty=True)
