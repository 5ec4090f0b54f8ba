"""Fixtures shared by all test packages."""

from __future__ import annotations

import os
import uuid

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
