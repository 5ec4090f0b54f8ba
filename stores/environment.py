"""Public home of ``show_versions`` (the versions of Python, the packages and dependencies)."""

from stores._show_versions import show_versions, versions

__all__ = ["show_versions", "versions"]
