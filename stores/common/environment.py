"""``show_versions()``: the versions to quote in a bug report (as ``xr.show_versions()``).

Exported as :func:`stiscube.show_versions` and :func:`cte.show_versions`, and run by
``stiscube show-versions`` and ``cte show-versions``.
"""

from __future__ import annotations

import importlib.metadata
import locale
import platform
import struct
import sys
from typing import TextIO

from stores._version import __version__

__all__ = ["show_versions", "versions"]

#: distributions reported, in this order (the runtime dependencies, then optional ones)
_DEPENDENCIES = (
    "numpy", "scipy", "pandas", "xarray", "zarr", "numcodecs", "h5netcdf", "h5py", "dask",
    "distributed", "fsspec", "astropy", "photutils", "matplotlib", "tqdm", "bokeh", "s3fs",
    "pytest",
)


def versions() -> dict[str, dict[str, str | None]]:
    """The system facts and package versions, as ``{"system": {...}, "packages": {...}}``.

    Packages that are not installed have the version ``None``.
    """
    system = {
        "stiscube": __version__,
        "python": sys.version.replace("\n", " "),
        "python-bits": str(struct.calcsize("P") * 8),
        "executable": sys.executable,
        "OS": platform.system(),
        "OS-release": platform.release(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "byteorder": sys.byteorder,
        "LC_ALL": None,
        "LANG": None,
        "locale": ".".join(str(p) for p in locale.getlocale() if p) or None,
    }
    import os

    system["LC_ALL"] = os.environ.get("LC_ALL")
    system["LANG"] = os.environ.get("LANG")
    packages: dict[str, str | None] = {}
    for name in _DEPENDENCIES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {"system": system, "packages": packages}


def show_versions(file: TextIO | None = None) -> None:
    """Print the project, Python, platform and key dependency versions.

    Parameters
    ----------
    file : file-like, optional
        Where to write (default: standard output).

    Examples
    --------
    >>> import stiscube
    >>> stiscube.show_versions()  # doctest: +SKIP
    """
    out = sys.stdout if file is None else file
    facts = versions()
    lines = ["", "INSTALLED VERSIONS", "------------------"]
    lines += [f"{k}: {v}" for k, v in facts["system"].items()]
    lines.append("")
    lines += [f"{k}: {v}" for k, v in facts["packages"].items()]
    out.write("\n".join(lines) + "\n")
