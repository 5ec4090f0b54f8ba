"""Writer processes for the concurrency and crash tests (the script is ``_cube_writer.py``).

:func:`start_writer` starts one; :func:`race` waits until every writer of a group is ready,
releases them at once through their go-file and collects how each ended.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

WRITER = Path(__file__).with_name("_cube_writer.py")


def start_writer(store, operation: str, label, seed, *, env: Mapping[str, str] | None = None,
                 **options: Any) -> subprocess.Popen:
    """``_cube_writer.py STORE OPERATION LABEL SEED --option value ...`` (``lock_timeout``
    becomes ``--lock-timeout``; ``True`` gives a bare flag)."""
    cmd = [sys.executable, str(WRITER), str(store), operation, str(label), str(seed)]
    for key, value in options.items():
        cmd.append(f"--{key.replace('_', '-')}")
        if value is not True:
            cmd.append(str(value))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=None if env is None else dict(env))


class Outcome(NamedTuple):
    """How a writer ended: the first word of its last line (``WROTE``, ``LOCKED``, ...)."""

    status: str
    out: str
    err: str
    returncode: int


def race(procs: Mapping[Any, subprocess.Popen], go: Path, *, timeout: float) -> dict:
    """Wait for every writer's ``READY``, create *go* to release them together, and return
    ``{key: Outcome}`` once all have ended."""
    for proc in procs.values():
        assert proc.stdout.readline().strip() == "READY"
    go.touch()
    outcomes = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=timeout)
        status = out.strip().splitlines()[-1].split()[0] if out.strip() else ""
        outcomes[key] = Outcome(status, out, err, proc.returncode)
    return outcomes
