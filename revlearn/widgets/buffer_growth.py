"""Widget: choose beta and the denominator bits, watch the information buffer grow.

``buffer_growth_explorer()`` returns a ``GrowthExplorer`` holding the two
sliders, the matplotlib figure and axes, an HTML readout and ``update``.
Changing a slider re-runs exact momentum steps with random gradients and
redraws the measured bits per parameter against the theory log2(d/n).  A
starting value the sliders cannot show is refused with a ValueError, never
silently moved to the nearest end of a slider.
"""
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from ..growth import bits_trace, savings_factor, theoretical_bits
from ..rational import check_denominator_bits
from .controls import check_count, check_decay_slider
from .snapshot import Snapshot

BETA_RANGE = (0.5, 0.999)   # the beta slider, by default


@dataclass
class GrowthExplorer:
    beta: widgets.FloatSlider
    denominator_bits: widgets.IntSlider
    fig: object
    ax: object
    readout: widgets.HTML
    output: widgets.Output
    box: widgets.VBox
    update: object
    trace: object = None        # the latest BitsTrace

    def _repr_mimebundle_(self, include=None, exclude=None):
        return Snapshot(self.box, self.fig, self.readout.value)._repr_mimebundle_()


def _readout(beta, trace, nominal):
    per_step = max(trace.per_step, 0.0)
    head = (f"<b>beta = {beta:.4f}</b> is stored as n/d = {trace.n}/{trace.d} = "
            f"{trace.n / trace.d:.6f} (error {abs(beta - trace.n / trace.d):.2e})<br>"
            f"measured: <b>{per_step:.4f} bits</b> per parameter per step; "
            f"theory log2(d/n) = {trace.theory:.4f}, log2(1/beta) = {nominal:.4f}<br>")
    if trace.n == trace.d:
        return head + ("n/d = 1: the velocity is never shrunk, so nothing is lost and nothing "
                       "is stored -- but this is not the beta you asked for")
    return head + (f"savings: <b>{savings_factor(per_step, 32):.0f}x</b> less than a float32 "
                   f"per step, <b>{savings_factor(per_step, 64):.0f}x</b> less than a float64")


def _check_settings(beta, denominator_bits, T, n_params, beta_range):
    check_decay_slider("beta", beta, beta_range, allow_one=True)
    check_denominator_bits(denominator_bits)     # 1..20, the slider's range too
    check_count("T", T)
    check_count("n_params", n_params)


def buffer_growth_explorer(beta=0.9, denominator_bits=16, T=200, n_params=100, seed=0,
                           beta_range=BETA_RANGE):
    """Build the beta / denominator-bits explorer (T exact steps on n_params parameters).

    The beta slider spans ``beta_range``, the denominator slider d = 2**1 .. 2**20
    (what exact training accepts); a starting value outside them raises ``ValueError``.
    """
    _check_settings(beta, denominator_bits, T, n_params, beta_range)
    beta_w = widgets.FloatSlider(value=beta, min=beta_range[0], max=beta_range[1], step=0.001,
                                 description="beta", readout_format=".3f",
                                 continuous_update=False)
    bits_w = widgets.IntSlider(value=denominator_bits, min=1, max=20,
                               description="d = 2**", continuous_update=False)
    fig, ax = plt.subplots(figsize=(6.5, 3.6), layout="constrained")
    plt.close(fig)   # shown through the Output widget only, not again at the end of the cell
    t = np.arange(1, T + 1)
    measured, = ax.plot(t, np.zeros(T), lw=2, label="measured (InfoBuffer)")
    theory, = ax.plot(t, np.zeros(T), "k--", lw=1, label="theory: t log2(d/n)")
    nominal, = ax.plot(t, np.zeros(T), ":", color="tab:red", lw=1, label="t log2(1/beta)")
    ax.set_xlabel("training step t")
    ax.set_ylabel("bits stored per parameter")
    ax.legend(loc="upper left")
    readout, output = widgets.HTML(), widgets.Output()
    ex = GrowthExplorer(beta_w, bits_w, fig, ax, readout, output,
                        widgets.VBox([widgets.HBox([beta_w, bits_w]), readout, output]), None)

    def update(change=None):
        trace = bits_trace(beta_w.value, T, n_params, denominator_bits=bits_w.value, seed=seed)
        nominal_bits, used_bits = theoretical_bits(beta_w.value, bits_w.value)
        measured.set_ydata(trace.bits_per_param)
        theory.set_ydata(t * used_bits)
        nominal.set_ydata(t * nominal_bits)
        top = max(trace.bits_per_param.max(), t[-1] * max(used_bits, nominal_bits), 1e-3)
        ax.set_ylim(-0.02 * top, 1.1 * top)
        ax.set_title(f"beta = {beta_w.value:.3f} as {trace.n}/{trace.d}")
        readout.value = _readout(beta_w.value, trace, nominal_bits)
        ex.trace = trace
        with output:
            output.clear_output(wait=True)
            display(fig)

    ex.update = update
    beta_w.observe(update, names="value")
    bits_w.observe(update, names="value")
    update()
    return ex
