"""show_versions(): the versions a bug report needs, as xarray's show_versions()."""

from __future__ import annotations

import importlib.metadata
import io
import platform
import sys

import cte
import stiscube
from stores.common.environment import versions


def _parsed(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def test_show_versions_prints_project_python_platform_and_dependencies():
    out = io.StringIO()
    stiscube.show_versions(file=out)
    facts = _parsed(out.getvalue())
    assert "INSTALLED VERSIONS" in out.getvalue()
    assert facts["stiscube"] == importlib.metadata.version("stiscube") == stiscube.__version__
    assert facts["python"] == sys.version.replace("\n", " ")
    assert facts["OS"] == platform.system() and facts["machine"] == platform.machine()
    for name in ("numpy", "xarray", "zarr", "dask", "astropy", "photutils", "tqdm"):
        assert facts[name] == importlib.metadata.version(name)


def test_cte_show_versions_is_the_same_and_missing_packages_are_none(capsys):
    cte.show_versions()
    assert _parsed(capsys.readouterr().out)["stiscube"] == stiscube.__version__
    assert cte.show_versions is stiscube.show_versions
    packages = versions()["packages"]
    for name, version in packages.items():
        try:
            assert version == importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            assert version is None
