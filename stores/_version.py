"""The installed version of the ``stiscube`` distribution (shared by all three packages)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stiscube")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
