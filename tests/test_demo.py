"""examples/demo.py --out: only a folder the demo made is ever deleted (issue 23)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests._examples import EXAMPLES, load_example

DEMO = EXAMPLES / "demo.py"


def test_a_foreign_non_empty_folder_is_refused_and_left_intact(tmp_path):
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "sub" / "data.bin").write_bytes(b"\0\1\2")
    before = sorted((p.relative_to(out), p.is_file() and p.read_bytes()) for p in out.rglob("*"))
    proc = subprocess.run([sys.executable, str(DEMO), "--out", str(out)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"demo.py: error: --out {out} is not empty and was not made by this demo "
        "(no .stiscube-demo marker); choose a new or empty folder"]
    after = sorted((p.relative_to(out), p.is_file() and p.read_bytes()) for p in out.rglob("*"))
    assert after == before


def test_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(FileExistsError, match=r"is a file, not a folder"):
        load_example("demo").prepare_out(target)
    assert target.read_text() == "x"


def test_a_folder_of_an_earlier_run_is_emptied_and_a_new_one_made(tmp_path):
    demo = load_example("demo")
    fresh = tmp_path / "a" / "b"
    demo.prepare_out(fresh)
    assert [p.name for p in fresh.iterdir()] == [demo.MARKER]
    (fresh / "old-result.fits").write_text("from the earlier run")
    demo.prepare_out(fresh)
    assert [p.name for p in fresh.iterdir()] == [demo.MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    demo.prepare_out(empty)
    assert [p.name for p in empty.iterdir()] == [demo.MARKER]


def test_out_has_help():
    proc = subprocess.run([sys.executable, str(DEMO), "--help"], capture_output=True, text=True,
                          timeout=120, check=True)
    assert "--out OUT" in proc.stdout and "refused" in proc.stdout
