"""Widget: choose the training length T and a zoom window in log alpha.

``chaos_explorer(problem)`` returns a ``ChaosExplorer`` holding the controls
(T, window centre, log10 of the window width), the figure and its two axes
(final loss with the exact slope drawn as a short tangent at every point;
the exact hypergradient), an HTML readout and ``update``.  Every change
re-runs an exact sweep of ``n_points`` step sizes inside the window.  A
starting value outside a slider's range is refused with a ValueError, never
silently moved to the nearest end of the slider.
"""
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from matplotlib.collections import LineCollection

from ..chaos import roughness, secant_agreement, sweep
from .controls import check_in_slider
from .snapshot import Snapshot

WIDTH_RANGE = (-6.0, 0.5)    # the log10-width slider


@dataclass
class ChaosExplorer:
    T: widgets.IntSlider
    center: widgets.FloatSlider
    log10_width: widgets.FloatSlider
    fig: object
    axes: tuple
    readout: widgets.HTML
    output: widgets.Output
    box: widgets.VBox
    update: object
    sweep: object = None        # the latest Sweep

    def _repr_mimebundle_(self, include=None, exclude=None):
        return Snapshot(self.box, self.fig, self.readout.value)._repr_mimebundle_()


def window(center, log10_width, n_points):
    """``n_points`` evenly spaced log alphas in a window of width 10**log10_width."""
    half = 0.5 * 10.0 ** log10_width
    return np.linspace(center - half, center + half, n_points)


def tangent_segments(s, length=0.9, every=1):
    """Segments through every ``every``-th point of Sweep ``s`` with the exact slope there
    (the tangents), each ``length`` grid spacings long, for a ``LineCollection``."""
    h = 0.5 * length * (s.log_alphas[1] - s.log_alphas[0])
    pts = slice(None, None, int(every))
    return [[(a - h, y - g * h), (a + h, y + g * h)]
            for a, y, g in zip(s.log_alphas[pts], s.loss[pts], s.hypergrad[pts])]


def _readout(s):
    g = np.abs(s.hypergrad)
    return (f"<b>T = {s.T}</b>, log alpha in [{s.log_alphas[0]:.5f}, {s.log_alphas[-1]:.5f}] "
            f"({len(s.log_alphas)} points, all exact: {s.exact})<br>"
            f"roughness (total variation / range) = <b>{roughness(s.loss):.2f}</b> "
            f"(1 = monotone); gradient predicts the direction on "
            f"<b>{100 * secant_agreement(s):.0f}%</b> of intervals<br>"
            f"|d loss / d log alpha|: median {np.median(g):.3g}, max {g.max():.3g}")


def chaos_explorer(problem, T=20, center=2.6, log10_width=0.0, n_points=40, T_max=60,
                   center_range=(1.5, 3.0)):
    """Build the T / zoom-window explorer for a ``revlearn.chaos.ChaosProblem``.

    Sliders: T in 1..``T_max``, the window centre in ``center_range`` and the
    log10 of its width in -6..0.5; a starting value outside them raises ``ValueError``.
    """
    if isinstance(T_max, bool) or not isinstance(T_max, (int, np.integer)) or T_max < 1:
        raise ValueError(f"T_max must be a positive whole number, got {T_max!r}")
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)):
        raise ValueError(f"T must be a whole number of training iterations, got {T!r}")
    check_in_slider("T", T, 1, T_max, f"pass T_max={max(int(T), 1)} to allow it")
    lo, hi = (float(c) for c in center_range)
    if not lo < hi:
        raise ValueError(f"center_range must be (low, high) with low < high, got {center_range!r}")
    check_in_slider("center", center, lo, hi,
              f"pass center_range=({min(lo, center):g}, {max(hi, center):g}) to widen it")
    check_in_slider("log10_width", log10_width, *WIDTH_RANGE,
              f"choose a width between 10**{WIDTH_RANGE[0]:g} and 10**{WIDTH_RANGE[1]:g}")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"n_points must be a whole number >= 2, got {n_points!r}")
    T_w = widgets.IntSlider(value=T, min=1, max=T_max, description="T",
                            continuous_update=False)
    c_w = widgets.FloatSlider(value=center, min=center_range[0], max=center_range[1],
                              step=1e-3, readout_format=".3f", description="centre",
                              continuous_update=False)
    w_w = widgets.FloatSlider(value=log10_width, min=WIDTH_RANGE[0], max=WIDTH_RANGE[1],
                              step=0.25, description="log10 width", continuous_update=False)
    fig, (ax_loss, ax_grad) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True,
                                         layout="constrained")
    plt.close(fig)   # shown through the Output widget only
    loss_line, = ax_loss.plot([], [], ".-", ms=4, lw=0.8, color="tab:blue",
                              label="final loss at each grid point")
    # Drawn over the curve, thicker than it: where they fit, the slope is a good guide.
    tangents = LineCollection([], colors="tab:red", lw=2, zorder=3,
                              label="exact hypergradient as a tangent")
    ax_loss.add_collection(tangents)
    ax_loss.set_ylabel("final training loss")
    ax_loss.legend(loc="upper left", fontsize=8)
    grad_line, = ax_grad.plot([], [], ".-", ms=3, lw=1, color="tab:purple",
                              label="exact d loss / d log alpha")
    ax_grad.legend(loc="upper left", fontsize=8)
    ax_grad.set_yscale("symlog", linthresh=1.0)
    ax_grad.set_ylabel("d loss / d log alpha")
    ax_grad.set_xlabel("log alpha")
    readout, output = widgets.HTML(), widgets.Output()
    box = widgets.VBox([widgets.HBox([T_w, c_w, w_w]), readout, output])
    ex = ChaosExplorer(T_w, c_w, w_w, fig, (ax_loss, ax_grad), readout, output, box, None)

    def update(change=None):
        s = sweep(problem, window(c_w.value, w_w.value, n_points), T_w.value)
        loss_line.set_data(s.log_alphas, s.loss)
        tangents.set_segments(tangent_segments(s))
        grad_line.set_data(s.log_alphas, s.hypergrad)
        lo, hi = s.loss.min(), s.loss.max()
        pad = 0.08 * (hi - lo) if hi > lo else 1e-6 * max(abs(hi), 1.0)
        ax_loss.set_ylim(lo - pad, hi + pad)     # tangents with huge slopes get clipped
        ax_loss.set_xlim(s.log_alphas[0], s.log_alphas[-1])
        ax_grad.relim()
        ax_grad.autoscale_view(scalex=False)
        ax_loss.set_title(f"T = {s.T} iterations")
        readout.value = _readout(s)
        ex.sweep = s
        with output:
            output.clear_output(wait=True)
            display(fig)

    ex.update = update
    for w in (T_w, c_w, w_w):
        w.observe(update, names="value")
    update()
    return ex
