"""Docs and types checked by tools, per package, against baselines that only shrink.

- **numpydoc**: every public function, class and method reachable from the ``__all__``
  of a public module (no leading underscore in its dotted name) has a docstring whose
  ``Parameters`` section documents exactly the parameters of its signature (numpydoc's
  validation codes GL08, PR01 and PR02).
- **mypy** over the package.

``tests/baselines/{numpydoc,mypy}-PACKAGE.txt`` list the findings still accepted. A new
finding fails the test, and so does a listed finding that is gone: remove its line, so
the baseline only shrinks.  Regenerate nothing by hand-copying the test's output
blindly: each line removed is a defect fixed, each line added is a defect made.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
from numpydoc.validate import validate

ROOT = Path(__file__).resolve().parents[1]
BASELINES = Path(__file__).with_name("baselines")
PACKAGES = ("stores", "stiscube", "cte")
CODES = ("GL08", "PR01", "PR02")


def _public_modules(package: str):
    yield importlib.import_module(package)
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


def _public_objects(package: str) -> dict[str, object]:
    """Dotted name -> object for what the package's public modules export (deduplicated
    by where it is defined), and the public methods those classes define."""
    found: dict[str, object] = {}
    for module in _public_modules(package):
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not getattr(obj, "__module__", "").startswith(package):
                continue  # exported from elsewhere (an exception of another package)
            found.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    for qualname, obj in list(found.items()):
        if inspect.isclass(obj):
            for name, member in vars(obj).items():
                if name.startswith("_") or not inspect.isfunction(
                    inspect.unwrap(getattr(member, "__func__", member))
                ):
                    continue
                found.setdefault(f"{qualname}.{name}", getattr(obj, name))
    return found


def _numpydoc_findings(package: str) -> set[str]:
    findings = set()
    for qualname, obj in _public_objects(package).items():
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue  # exceptions take a message; their docstring says when they are raised
        result = validate(qualname)
        for code, _message in result["errors"]:
            if code in CODES:
                findings.add(f"{qualname} {code}")
    return findings


_MYPY_LINE = re.compile(r"^(?P<file>[^:]+):\d+(?::\d+)?: error: (?P<message>.*)$")


def _mypy_findings() -> dict[str, set[str]]:
    """mypy over the three packages at once (one run), grouped by package; line numbers
    are dropped so that unrelated edits do not change a finding."""
    run = subprocess.run(
        [sys.executable, "-m", "mypy", *PACKAGES, "--no-error-summary", "--hide-error-context",
         "--no-pretty", "--show-error-codes"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if run.returncode not in (0, 1) or run.stderr.strip():
        pytest.fail(f"mypy did not run: {run.stderr or run.stdout}")
    findings: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for line in run.stdout.splitlines():
        if (match := _MYPY_LINE.match(line)) is not None:
            package = Path(match["file"]).parts[0]
            findings[package].add(f"{match['file']}: {match['message']}")
    return findings


def _compare(kind: str, package: str, findings: set[str]) -> list[str]:
    """What differs between *findings* and the package's baseline (empty: no change)."""
    path = BASELINES / f"{kind}-{package}.txt"
    accepted = set(path.read_text().splitlines()) - {""} if path.exists() else set()
    new, fixed = sorted(findings - accepted), sorted(accepted - findings)
    message = []
    if new:
        message.append(f"{len(new)} new {kind} finding(s) in {package}, fix them:")
        message += [f"  {line}" for line in new]
    if fixed:
        message.append(f"{len(fixed)} line(s) of {path.relative_to(ROOT)} are fixed, remove them:")
        message += [f"  {line}" for line in fixed]
    return message


@pytest.mark.parametrize("package", PACKAGES)
def test_numpydoc_parameters(package):
    message = _compare("numpydoc", package, _numpydoc_findings(package))
    assert not message, "\n".join(message)


def test_mypy():
    """One mypy run over the three packages (runs in parallel would share its cache)."""
    findings = _mypy_findings()
    message = [line for pkg in PACKAGES for line in _compare("mypy", pkg, findings[pkg])]
    assert not message, "\n".join(message)
