"""``stiscube ingest --index``, ``stiscube index`` and the versions listed by ``stiscube info``."""

from __future__ import annotations

import json

import numpy as np

from stiscube import PixelDB
from stiscube.cli import main


def test_ingest_index_keeps_the_index_current_and_info_lists_versions(tmp_path, capsys):
    sim, db_path = tmp_path / "sim", tmp_path / "db"
    args = ["--periods", "3", "--frames", "4", "--shape", "24", "16", "--seed", "3"]
    assert main(["simulate", "--out", str(sim), *args]) == 0
    assert main(["ingest", str(db_path), "--simulation", str(sim), "--index"]) == 0
    assert "history index of" in capsys.readouterr().out
    db = PixelDB(db_path, mode="r")
    assert db.history_index_current
    # the index answers what the cube holds (read with plain read_arrays)
    cube = db.store.read_arrays(db.anneal_numbers, row=5, col=7)
    hist = db.history_values(5, 7)
    for name, values in cube.items():
        np.testing.assert_array_equal(hist[name], values)
    assert main(["index", str(db_path)]) == 0
    assert "already current" in capsys.readouterr().out
    assert main(["info", str(db_path), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["history_index"] is True
    assert info["version"] == 3
    changes = [(v["version"], v["action"], v["label"]) for v in info["versions"]]
    assert changes == [(0, "create", None), (1, "append", 1), (2, "append", 2), (3, "append", 3)]
    assert main(["info", str(db_path)]) == 0
    text = capsys.readouterr().out
    assert "append of period 3" in text and "history index    current" in text
    assert main(["index", str(db_path), "--rebuild"]) == 0
    assert "built for 3 periods" in capsys.readouterr().out
