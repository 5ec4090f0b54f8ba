"""Checks of plotted artists shared by the figure and site tests (issue 11 acceptance).

The plots tag data artists ``gid="data:<key>"`` and model curves ``gid="model:<key>"``;
these helpers read the drawn arrays back from the artists and compare them, in plain
numpy, with the points they belong to.
"""

from __future__ import annotations

import matplotlib.dates as mdates
import numpy as np

__all__ = ["by_gid", "check_curves"]


def by_gid(ax, prefix):
    """Plotted lines whose gid starts with *prefix*, keyed by the rest of the gid."""
    out = {}
    for line in ax.lines:
        gid = line.get_gid() or ""
        if gid.startswith(prefix):
            out.setdefault(gid[len(prefix):], []).append(line)
    return out


def _curve_vs_points(ax, log_x):
    """(curve x range, data x range, min |model - y| / err) of every model curve."""
    data = by_gid(ax, "data:")
    out = []
    for key, (line,) in by_gid(ax, "model:").items():
        xs, ys = (np.asarray(mdates.date2num(v)) if not log_x and i == 0 else np.asarray(v)
                  for i, v in enumerate(line.get_data()))
        px, py, pe = [], [], []
        for dl in data[key]:
            (container,) = [c for c in ax.containers if c.lines[0] is dl]
            x, y = dl.get_data()
            x = np.asarray(x if log_x else mdates.date2num(x), float)
            seg = container.lines[2][0].get_segments()
            px.append(x)
            py.append(np.asarray(y, float))
            pe.append(np.array([0.5 * (s[1][1] - s[0][1]) for s in seg]))
        px, py, pe = (np.concatenate(v) for v in (px, py, pe))
        if log_x:
            model_at = np.interp(np.log10(px), np.log10(xs), ys, left=np.nan, right=np.nan)
        else:
            model_at = np.interp(px, xs, ys, left=np.nan, right=np.nan)
        z = np.abs(model_at - py) / pe
        out.append(((xs.min(), xs.max()), (px.min(), px.max()), np.nanmin(z)))
    return out


def check_curves(fig, log_x):
    """Assert every model curve of *fig* lies within its points' x range and comes within
    3 sigma (the points' error bars) of at least one of them; return the curve count."""
    n = 0
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for (c_lo, c_hi), (d_lo, d_hi), z in _curve_vs_points(ax, log_x):
            assert d_lo * (1 - 1e-9) <= c_lo and c_hi <= d_hi * (1 + 1e-9)
            assert z <= 3.0
            n += 1
    return n
