"""Fixtures shared by all test packages."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(params=["local", "memory"])
def store_url(request, tmp_path):
    """A location for a new store: a local directory or a unique ``memory://`` URL."""
    if request.param == "local":
        yield str(tmp_path / "store")
        return
    root = f"/test-{uuid.uuid4().hex}"
    yield f"memory://{root}/store"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


#: the real HST archive files and published figures laid beside the repository (../shared/real)
REAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "real"


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """``../shared/real``: real STIS/WFC3 archive files (read-only; derive variants in tests).

    The directory is part of the project's test inputs (CI lays it beside the clone), so a
    missing directory is an error, not a skip.
    """
    if not REAL_DIR.is_dir():
        pytest.fail(f"the real archive files are missing: {REAL_DIR} (see DEVELOPERS: ../shared)")
    return REAL_DIR
