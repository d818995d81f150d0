"""Widget for notebook 11: run Adam backwards, naively and exactly, for any (beta1, beta2).

``adam_reversal_explorer(train_loss, x0)`` trains T steps of Adam with a
constant step size and, for the decays and the float precision the controls
pick, runs training backwards twice:

* naively in floats (``revlearn.reverse_naive``): the left panel draws its
  error against the reverse steps, next to the predicted line that climbs
  max(log2(1/beta1), log2(1/beta2)) bits per step (the faster-forgetting
  average sets the pace) and the 10 % failure threshold;
* exactly (``revlearn.adam_reversal.exact_walk``): every recovered state is
  compared bit for bit with the forward pass's, and the right panel draws the
  bits in m's and s's buffers against log2(d/n1) and log2(d/n2) per step.

The returned ``AdamReversalExplorer`` holds the controls (``beta1``,
``beta2``, ``precision``), the figure, the lines, an HTML ``readout`` and
``update``, so a test can set ``.value`` and check what changed.  Displayed,
it shows the live controls and leaves a picture and a line of text of its
starting state for readers of a saved notebook.  A starting value outside a
slider's range is refused, never moved to the nearest end.
"""

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from ..adam import Adam
from ..adam_reversal import (FLOAT_STATE_BITS, exact_walk, loss_rate, predicted_failure_step,
                             theoretical_bits)
from ..naive import MANTISSA_BITS, reverse_naive
from .reversal import _redraw
from .controls import check_choice, check_count, check_decay_slider, check_step_size
from .snapshot import Snapshot

BETA1_RANGE = (0.5, 0.99)
BETA2_RANGE = (0.5, 0.9999)
PRECISIONS = [("float32 (24-bit mantissa)", "float32"),
              ("float64 (53-bit mantissa)", "float64")]
ERROR_FLOOR = 1e-20     # the bottom of the error axis, where the exact reversal's 0 is drawn


def _check_settings(alpha, T, beta1, beta2, precision, beta1_range, beta2_range, precisions):
    check_count("T", T, 2)
    check_step_size(alpha)
    check_decay_slider("beta1", beta1, beta1_range)
    check_decay_slider("beta2", beta2, beta2_range)
    check_choice("precision", precision, precisions)
    values = [v for _, v in precisions]
    unknown = [v for v in values if v not in MANTISSA_BITS or v == "float16"]
    if unknown:
        raise ValueError(f"precisions may be 'float32' and 'float64' (float16 cannot hold "
                         f"Adam's eps = 1e-8, so even training breaks), got {unknown}")


class AdamReversalExplorer:
    """Sliders for beta1 and beta2 and a precision dropdown driving both reversals of Adam.

    Attributes: ``beta1``, ``beta2`` (FloatSliders), ``precision`` (Dropdown),
    ``readout`` (HTML), ``output`` (Output holding the figure), ``fig`` with
    axes ``ax_error`` and ``ax_bits``; lines ``measured``, ``predicted``,
    ``threshold``, ``exact_error`` (left) and ``bits_m``, ``bits_s``,
    ``theory_m``, ``theory_s`` (right); ``naive`` (the latest
    ``NaiveReversal``), ``walk`` (the latest ``ExactWalk``), ``widget``.
    """

    def __init__(self, train_loss, x0, *, alpha=0.01, T=400, beta1=0.9, beta2=0.999,
                 precision="float64", meta=None, beta1_range=BETA1_RANGE,
                 beta2_range=BETA2_RANGE, precisions=PRECISIONS):
        _check_settings(alpha, T, beta1, beta2, precision, beta1_range, beta2_range, precisions)
        self.train_loss, self.x0, self.alpha, self.T, self.meta = train_loss, x0, alpha, T, meta
        style, width = {"description_width": "initial"}, widgets.Layout(width="330px")
        self.beta1 = widgets.FloatSlider(value=beta1, min=beta1_range[0], max=beta1_range[1],
                                         step=0.01, readout_format=".2f",
                                         description="β1 (mean)", continuous_update=False,
                                         style=style, layout=width)
        self.beta2 = widgets.FloatSlider(value=beta2, min=beta2_range[0], max=beta2_range[1],
                                         step=0.0001, readout_format=".4f",
                                         description="β2 (second moment)",
                                         continuous_update=False, style=style, layout=width)
        self.precision = widgets.Dropdown(options=precisions, value=precision,
                                          description="precision", style=style)
        self.readout = widgets.HTML()
        self.output = widgets.Output()
        self._draw_static()
        for control in (self.beta1, self.beta2, self.precision):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.beta1, self.beta2, self.precision]),
                                    self.readout, self.output])
        self.update()

    def _draw_static(self):
        T = self.T
        self.fig, (self.ax_error, self.ax_bits) = plt.subplots(
            1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
        plt.close(self.fig)   # shown only through self.output
        k, t, nan = np.arange(T + 1), np.arange(T + 1), np.full(T + 1, np.nan)
        ax = self.ax_error
        (self.measured,) = ax.semilogy(k, nan, lw=2, label="naive: max |recovered x - x|")
        (self.predicted,) = ax.semilogy(k, nan, "k--", lw=1,
                                        label="predicted: |x| 2^-p (1/min(β1, β2))^k")
        (self.threshold,) = ax.semilogy(k, nan, ":", color="0.5", label="failure: 10% of |x|")
        (self.exact_error,) = ax.semilogy(k, nan, color="C2", lw=3,
                                          label="exact: error 0 at every step (drawn at the floor)")
        ax.set(xlabel="reverse steps k (from the end of training)", ylabel="reversal error",
               xlim=(0, T), ylim=(ERROR_FLOOR, 1e4))
        ax.legend(loc="center right", fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
        ax = self.ax_bits
        (self.bits_m,) = ax.plot(t, nan, color="C0", lw=2.5, label="m's buffer, measured")
        (self.theory_m,) = ax.plot(t, nan, "--", color="navy", lw=1, label="t log2(d/n1)")
        (self.bits_s,) = ax.plot(t, nan, color="C1", lw=2.5, label="s's buffer, measured")
        (self.theory_s,) = ax.plot(t, nan, "--", color="saddlebrown", lw=1, label="t log2(d/n2)")
        ax.set(xlabel="training step t", ylabel="bits stored per parameter", xlim=(0, T),
               title="what exact reversal stores")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
        self.fig.tight_layout()

    def update(self, change=None):
        """Re-run both reversals for the current controls and redraw."""
        b1, b2, precision = float(self.beta1.value), float(self.beta2.value), self.precision.value
        T, p = self.T, MANTISSA_BITS[precision]
        opt = Adam(np.full(T, self.alpha), np.full(T, b1), np.full(T, b2))
        self.naive = r = reverse_naive(self.train_loss, self.x0, meta=self.meta, optimizer=opt,
                                       precision=precision)
        self.walk = w = exact_walk(self.train_loss, self.x0, opt, meta=self.meta)
        k = np.arange(T + 1)
        scale = r.weight_scale[::-1]            # |x| at x_{T-k}, the state k reverse steps back
        err = r.errors[::-1].astype(float)
        err[(err <= 0) | ~np.isfinite(err)] = np.nan     # exact zeros and overflow off the log axis
        self.measured.set_ydata(err)
        rate = loss_rate(b1, b2)
        self.predicted.set_ydata(scale * 2.0 ** (-p + rate * k))
        self.threshold.set_ydata(0.1 * scale)
        exact_err = w.errors[::-1]
        self.exact_error.set_ydata(np.where(exact_err == 0, ERROR_FLOOR * 1.5, exact_err))
        self.ax_error.set_title(f"Adam reversed in {precision}, β1 = {b1:.2f}, β2 = {b2:.4f}")
        n1, n2 = theoretical_bits(b1, b2)
        self.bits_m.set_ydata(w.bits["m"])
        self.bits_s.set_ydata(w.bits["s"])
        self.theory_m.set_ydata(k * n1)
        self.theory_s.set_ydata(k * n2)
        top = max(np.nanmax(w.bits["m"]), np.nanmax(w.bits["s"]), T * max(n1, n2), 1e-3)
        self.ax_bits.set_ylim(-0.02 * top, 1.1 * top)
        failed = r.steps_to_failure()
        predicted = predicted_failure_step(b1, b2, p)
        per_step = w.bits_per_step()
        faster = "β1 (the mean)" if b1 < b2 else "β2 (the second moment)" if b2 < b1 else "both"
        regime = "" if b1 <= b2 else (
            " <i>(β2 &lt; β1: the second moment forgets faster than the mean, Adam's step is "
            "no longer of order α, and the law is only a best case)</i>")
        self.readout.value = (
            f"<b>naive</b>: loses max(log2(1/β1), log2(1/β2)) = {rate:.3f} bits per reverse "
            f"step, set by {faster}; {precision} keeps p = {p} bits, so it should fail after "
            f"about {predicted:.0f} steps. Measured: "
            + (f"<b>failed after {failed} steps</b>" if failed is not None
               else f"<b>still within 10% after all {T} steps</b>") + regime
            + f"<br><b>exact</b>: every state recovered bit for bit: <b>{w.exact}</b>; buffer "
            f"<b>{per_step:.4f}</b> bits per parameter per step (theory log2(d/n1) + "
            f"log2(d/n2) = {n1:.4f} + {n2:.4f} = {n1 + n2:.4f}), "
            f"{FLOAT_STATE_BITS / per_step:.0f}x less than storing x, m, s as float64")
        _redraw(self.fig, self.output)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return Snapshot(self.widget, self.fig, self.readout.value)._repr_mimebundle_()


def adam_reversal_explorer(train_loss, x0, *, alpha=0.01, T=400, beta1=0.9, beta2=0.999,
                           precision="float64", meta=None, beta1_range=BETA1_RANGE,
                           beta2_range=BETA2_RANGE, precisions=PRECISIONS):
    """Build an ``AdamReversalExplorer``: T steps of Adam with constant step size ``alpha``
    on ``train_loss(x, meta, t)`` from ``x0``, reversed naively in the chosen precision
    and exactly.  Raises ``ValueError`` for a starting beta outside its slider's range.
    Display the result in a notebook (about a second per change for a small net)."""
    return AdamReversalExplorer(train_loss, x0, alpha=alpha, T=T, beta1=beta1, beta2=beta2,
                                precision=precision, meta=meta, beta1_range=beta1_range,
                                beta2_range=beta2_range, precisions=precisions)
