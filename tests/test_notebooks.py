"""The example notebooks run top to bottom, show their figures inline, and print true numbers."""

from __future__ import annotations

import re

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from tests._examples import EXAMPLES

_PLOT_CALL = re.compile(r"^\s*(plots\.)?plot_\w+\(", re.M)  # a cell whose value is a figure


@pytest.fixture(scope="module", params=sorted(p.name for p in EXAMPLES.glob("*.ipynb")))
def executed(request):
    notebook = nbformat.read(EXAMPLES / request.param, as_version=4)
    resources = {"metadata": {"path": str(EXAMPLES)}}
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources=resources)
    client.execute()
    return request.param, notebook


def _code(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _cell(notebook, needle: str):
    return next(cell for cell in _code(notebook) if needle in cell.source)


def _numbers(text: str) -> np.ndarray:
    return np.array([float(t) for t in re.findall(r"[-+]?\d+\.\d*(?:[eE][-+]?\d+)?", text)])


@pytest.mark.slow
def test_runs_without_error(executed):
    _, notebook = executed
    errors = [
        output
        for cell in _code(notebook)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors


@pytest.mark.slow
def test_figures_inline(executed):
    """Every cell that ends in a plot call shows a PNG, not ``<Figure size ...>`` text."""
    name, notebook = executed
    plotting = [cell for cell in _code(notebook) if _PLOT_CALL.search(cell.source)]
    assert plotting, f"{name} has no plotting cell"
    for cell in plotting:
        kinds = [set(o.get("data", {})) for o in cell.get("outputs", [])]
        assert any("image/png" in k for k in kinds), cell.source
        shown = [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
        assert all(len(png) > 1000 for png in shown)  # base64 PNGs of real size


@pytest.mark.slow
def test_printed_values(executed):
    name, notebook = executed
    if name == "pixel_database.ipynb":
        # the seed's real row (0, 5) of period 200 comes back from the query unchanged
        seed = pd.read_csv(EXAMPLES / "data" / "anneal_200_snippet.csv")
        row = seed[(seed.Row == 0) & (seed.Column == 5)].iloc[0]
        shown = _numbers(_text(_cell(notebook, "query_pixel(pixel_row=0, pixel_col=5")))
        for column in ("Sci_Mean", "Err_Mean", "Readnoise", "Stability"):
            assert np.isclose(shown, row[column], rtol=1e-5).any(), column
        # the superdark header: any amplifier and gain (as STScI's), counts that add up
        header = _text(_cell(notebook, "write_reference(... \"dark\""))
        assert re.search(r"CCDAMP\s*=\s*'ANY'", header)
        assert re.search(r"CCDGAIN\s*=\s*-1\b", header)
        assert re.search(r"REF_TEMP\s*=\s*18", header)
        cards = {k: int(v) for k, v in re.findall(r"^(N\w+)\s*=\s*(\d+)", header, re.M)}
        assert cards["NFLAGGED"] == cards["NHOT"] + cards["NUNSTAB"] - cards["NBOTH"]
        assert cards["NHOT"] > 0
        # measured dark rate of steady pixels agrees with the simulator's truth
        offset = _numbers(_text(_cell(notebook, "median(measured - true)")))[-1]
        assert abs(offset) < 2e-4
    else:
        # fitted loss vs the injected truth at four fluxes: within 3 sigma + 0.01
        text = _text(_cell(notebook, "np.column_stack([flux, injected, fitted, fitted_err])"))
        table = _numbers(text).reshape(-1, 4)
        flux, injected, fitted, err = table.T
        np.testing.assert_array_equal(flux, [500.0, 2000.0, 8000.0, 30000.0])
        assert np.all(np.abs(fitted - injected) <= 3 * err + 0.01), table
