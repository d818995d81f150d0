"""Widgets for notebooks 1 and 2: naive reversal failing, exact reversal stepping.

``naive_reversal_explorer`` trains once per setting and runs training backwards
in plain floating point; a beta slider and a precision dropdown re-run it and
redraw the reversal error against reverse steps next to the predicted
log2(1/beta) bits-per-step line.

``trajectory_stepper`` puts the exact engine under a step slider: moving the
slider right runs exact forward steps of momentum SGD on the 2-D toy, moving
it left runs the exact *reverse* steps (recovering x_t and v_t from x_{t+1},
v_{t+1} and the information buffer), and every recovered state is checked bit
for bit against the one the forward pass produced.

Both return an object holding the controls, the matplotlib figure and axes,
the plotted lines, an ``ipywidgets.HTML`` readout and an ``update`` method, so
a test can set ``.value`` on a control and check what changed.  Figures are
drawn into an ``ipywidgets.Output`` and re-displayed on every change, which
works with the inline backend (no ipympl needed).  Displaying the object
shows the live controls, and leaves a picture of the starting state for
readers of a saved notebook (``revlearn.widgets.snapshot``).  A setting the
controls cannot show (a beta outside the slider's range) is refused, never
silently replaced by the nearest value the slider allows.
"""
import math

import autograd
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from ..buffer import InfoBuffer
from ..errors import ReversalError
from ..fixedpoint import DEFAULT_FRAC_BITS, ExactArray
from ..momentum import exact_step, exact_unstep_v, exact_unstep_x
from ..naive import MANTISSA_BITS, reverse_naive
from ..rational import DEFAULT_DENOMINATOR_BITS
from ..schedules import Schedule
from ..toy import toy_problem
from .controls import check_choice, check_count, check_decay_slider, check_step_size
from .snapshot import Snapshot

BETA_RANGE = (0.5, 0.99)     # the naive-reversal explorer's beta slider, by default
PRECISIONS = [("float16 (11-bit mantissa)", "float16"),
              ("float32 (24-bit mantissa)", "float32"),
              ("float64 (53-bit mantissa)", "float64")]


def _redraw(fig, output):
    """Show the current state of ``fig`` inside ``output``, replacing what was there."""
    with output:
        output.clear_output(wait=True)
        display(fig)


def _mantissa_bits(precision):
    return MANTISSA_BITS[precision] if isinstance(precision, str) else int(precision)


def _precision_name(precision):
    return precision if isinstance(precision, str) else f"mpmath, {int(precision)} bits"


def _window(points, margin=0.15):
    """Plot limits ((u0, u1), (w0, w1)) around ``points`` with a relative margin."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-3)
    return tuple((float(a), float(b)) for a, b in zip(lo - pad, hi + pad))


def predicted_failure_step(beta, mantissa_bits):
    """Reverse steps until naive reversal has lost all ``mantissa_bits``: p / log2(1/beta)."""
    return mantissa_bits / math.log2(1 / beta)


class NaiveReversalExplorer:
    """A beta slider and a precision dropdown driving a naive-reversal experiment.

    Attributes: ``beta`` (FloatSlider), ``precision`` (Dropdown), ``readout``
    (HTML), ``output`` (Output holding the figure), ``fig``/``ax``, the lines
    ``measured``, ``predicted`` and ``threshold``, ``failure_line`` (vertical
    marker), ``result`` (the latest ``NaiveReversal``) and ``widget`` (the whole
    box, which is what the notebook displays).
    """

    def __init__(self, train_loss, x0, *, alpha=0.5, T=300, beta=0.9, precision="float64",
                 meta=None, precisions=PRECISIONS, beta_range=BETA_RANGE):
        _check_explorer_settings(alpha, T, beta, beta_range, precision, precisions)
        self.train_loss, self.x0, self.alpha, self.T, self.meta = train_loss, x0, alpha, T, meta
        self.beta = widgets.FloatSlider(value=beta, min=beta_range[0], max=beta_range[1],
                                        step=0.01,
                                        description="β (momentum decay)", readout_format=".2f",
                                        continuous_update=False,
                                        style={"description_width": "initial"},
                                        layout=widgets.Layout(width="420px"))
        self.precision = widgets.Dropdown(options=precisions, value=precision,
                                          description="precision",
                                          style={"description_width": "initial"})
        self.readout = widgets.HTML()
        self.output = widgets.Output()
        self.fig, self.ax = plt.subplots(figsize=(7.5, 4.2))
        plt.close(self.fig)   # shown only through self.output
        k = np.arange(T + 1)
        (self.measured,) = self.ax.semilogy(k, np.full(T + 1, np.nan), lw=2,
                                            label="measured: max |recovered x - x|")
        (self.predicted,) = self.ax.semilogy(k, np.full(T + 1, np.nan), "k--", lw=1,
                                             label="predicted: |x| 2^-p (1/β)^k")
        (self.threshold,) = self.ax.semilogy(k, np.full(T + 1, np.nan), ":", color="0.5",
                                             label="failure: 10% of |x|")
        self.failure_line = self.ax.axvline(np.nan, color="C3", lw=1, label="measured failure")
        self.ax.set(xlabel="reverse steps k (from the end of training)",
                    ylabel="reversal error", xlim=(0, T), ylim=(1e-20, 1e4))
        self.ax.legend(loc="lower right", fontsize=8)
        self.ax.grid(True, which="major", alpha=0.3)
        self.fig.tight_layout()
        self.beta.observe(self.update, names="value")
        self.precision.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.beta, self.precision]),
                                    self.readout, self.output])
        self.update()

    def update(self, change=None):
        """Re-run the naive reversal for the current controls and redraw."""
        beta, precision = float(self.beta.value), self.precision.value
        T = self.T
        self.result = r = reverse_naive(self.train_loss, self.x0, np.full(T, self.alpha),
                                        np.full(T, beta), self.meta, precision=precision)
        p = _mantissa_bits(precision)
        k = np.arange(T + 1)
        scale = r.weight_scale[::-1]            # |x| at x_{T-k}, the state k reverse steps back
        err = r.errors[::-1].astype(float)
        err[(err <= 0) | ~np.isfinite(err)] = np.nan   # log axis: exact zeros and overflow off-plot
        self.measured.set_ydata(err)
        self.predicted.set_ydata(scale * 2.0 ** (-p) * (1 / beta) ** k)
        self.threshold.set_ydata(0.1 * scale)
        failed = r.steps_to_failure()
        self.failure_line.set_xdata([np.nan if failed is None else failed] * 2)
        predicted = predicted_failure_step(beta, p)
        self.ax.set_title(f"naive reversal in {_precision_name(precision)}, β = {beta:.2f}")
        self.readout.value = (
            f"β = {beta:.2f}: naive reversal loses log2(1/β) = {math.log2(1 / beta):.3f} bits "
            f"per step; {_precision_name(precision)} keeps p = {p} bits, so it should fail after "
            f"about p / log2(1/β) = {predicted:.0f} reverse steps. Measured: "
            + (f"<b>failed after {failed} steps</b>" if failed is not None
               else f"<b>still within 10% after all {T} steps</b>"))
        _redraw(self.fig, self.output)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return Snapshot(self.widget, self.fig, self.readout.value)._repr_mimebundle_()


def _check_explorer_settings(alpha, T, beta, beta_range, precision, precisions):
    """Refuse settings the explorer would otherwise clamp or choke on, naming the fix."""
    check_count("T", T)
    check_step_size(alpha)
    check_decay_slider("beta", beta, beta_range)
    check_choice("precision", precision, precisions)


def naive_reversal_explorer(train_loss, x0, *, alpha=0.5, T=300, beta=0.9, precision="float64",
                            meta=None, precisions=PRECISIONS, beta_range=BETA_RANGE):
    """Build a ``NaiveReversalExplorer``: T steps of momentum SGD with constant
    step size ``alpha`` on ``train_loss(x, meta, t)`` from ``x0``, reversed
    naively; the controls pick beta (within ``beta_range``) and the float
    precision (one of ``precisions``, (label, value) pairs).  Raises
    ``ValueError`` for a beta outside ``beta_range`` rather than clamping it.
    Display the result in a notebook."""
    return NaiveReversalExplorer(train_loss, x0, alpha=alpha, T=T, beta=beta,
                                 precision=precision, meta=meta, precisions=precisions,
                                 beta_range=beta_range)


class TrajectoryStepper:
    """A step slider that runs the exact engine forwards and backwards on a 2-D problem.

    Attributes: ``slider`` (IntSlider, description "step"), ``readout`` (HTML,
    starts "step t of T: x = (u, w), bits stored = ..."), ``output`` (Output
    holding the figure), ``fig`` and axes ``ax_path``/``ax_bits``, the lines
    ``path`` (x_0 .. x_t), ``point`` (x_t now) and ``bits_point``, the exact
    state ``X``/``V`` (ExactArrays; V's buffer holds the information) and
    ``t``.  The forward pass's integer states are remembered only to draw the
    full trajectory and to check each recovered state against them.
    """

    def __init__(self, problem=None, *, frac_bits=DEFAULT_FRAC_BITS,
                 denominator_bits=DEFAULT_DENOMINATOR_BITS, buffer=InfoBuffer, start=0):
        self.problem = problem if problem is not None else toy_problem()
        p = self.problem
        if np.shape(p.x0) != (2,):
            raise ValueError(f"the trajectory stepper draws 2-D problems: x0 must hold two "
                             f"numbers, got shape {np.shape(p.x0)}")
        self.T = p.T
        if not (0 <= int(start) <= self.T):
            raise ValueError(f"start must be a step in 0..{self.T}, got {start!r}")
        self.sched = Schedule(p.alphas, p.betas, len(p.x0), None, denominator_bits)
        self._grad = autograd.grad(lambda x, t: p.train_loss(x, None, t))
        self.X = ExactArray(p.x0, frac_bits)
        self.V = ExactArray(np.zeros(len(p.x0)), frac_bits, buffer=buffer(len(p.x0)))
        self.t = 0
        # Run the whole forward pass once, remembering each state, then go back to the start
        # with the reverse pass (which checks every recovered state against the memory).
        self._k = {0: (self.X.k.copy(), self.V.k.copy())}
        self._bits = np.zeros(self.T + 1)
        self._go_to(self.T)
        self._go_to(0)
        self._draw_static()
        self.slider = widgets.IntSlider(value=int(start), min=0, max=self.T, step=1,
                                        description="step",
                                        continuous_update=True,
                                        layout=widgets.Layout(width="520px"))
        self.slider.add_class("revlearn-step-slider")
        self.readout = widgets.HTML()
        self.readout.add_class("revlearn-step-readout")
        self.output = widgets.Output()
        self.output.add_class("revlearn-step-plot")
        self.slider.observe(self.update, names="value")
        self.widget = widgets.VBox([self.slider, self.readout, self.output])
        self.update()

    # -- the exact engine, one step at a time ------------------------------------------------
    def step_forward(self):
        """x_t, v_t -> x_{t+1}, v_{t+1}: one exact momentum step (fills the buffer)."""
        t, s = self.t, self.sched
        g = self._grad(self.X.val, t)
        exact_step(self.X, self.V, g, s.alpha(t), s.numerator(t), s.d)
        self.t = t + 1
        self._remember()

    def step_backward(self):
        """x_{t+1}, v_{t+1} -> x_t, v_t: one exact reverse step (empties the buffer)."""
        t, s = self.t - 1, self.sched
        exact_unstep_x(self.X, self.V, s.alpha(t))
        g = self._grad(self.X.val, t)          # the same gradient, at the same recovered x_t
        exact_unstep_v(self.V, g, s.numerator(t), s.d)
        self.t = t
        self._remember()

    def _remember(self):
        """Store a forward state the first time we see it; afterwards, demand the same bits."""
        now = (self.X.k.copy(), self.V.k.copy())
        if self.t not in self._k:
            self._k[self.t] = now
            self._bits[self.t] = self.V.buffer.nbits
        elif not self.matches_forward():
            raise ReversalError(f"step {self.t}: the recovered state differs from the forward "
                                "pass's; exact reversal has been broken")

    def matches_forward(self):
        """True when the current x_t and v_t are bit for bit the forward pass's."""
        xk, vk = self._k[self.t]
        return bool((self.X.k == xk).all() and (self.V.k == vk).all())

    def _go_to(self, step):
        while self.t < step:
            self.step_forward()
        while self.t > step:
            self.step_backward()

    # -- drawing ------------------------------------------------------------------------------
    def _xy(self, t):
        return self._k[t][0] * 2.0 ** -self.X.frac_bits

    def _draw_static(self):
        self.fig, (self.ax_path, self.ax_bits) = plt.subplots(
            1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1.6, 1]})
        plt.close(self.fig)   # shown only through self.output
        full = np.array([self._xy(t) for t in range(self.T + 1)])
        bounds = _window(full)
        U, W = np.meshgrid(np.linspace(*bounds[0], 160), np.linspace(*bounds[1], 160))
        Z = self.problem.train_loss(np.stack([U, W]), None, 0)   # losses accept stacked grids
        self.ax_path.contour(U, W, Z, levels=np.geomspace(0.01, 30, 14), cmap="viridis",
                             linewidths=0.8)
        self.ax_path.plot(full[:, 0], full[:, 1], ":", color="0.35", lw=1.2, marker=".", ms=3,
                          label=f"all {self.T} steps")
        self.ax_path.plot(*full[0], "ks", ms=6, label="x_0")
        (self.path,) = self.ax_path.plot([], [], "-", color="C3", lw=1.5, marker=".", ms=4,
                                         label="x_0 ... x_t")
        (self.point,) = self.ax_path.plot([], [], "o", color="C3", ms=10, mec="k",
                                          label="x_t now")
        self.ax_path.set(xlim=bounds[0], ylim=bounds[1], xlabel="u", ylabel="w")
        self.ax_path.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4,
                            fontsize=8, frameon=False)
        steps = np.arange(self.T + 1)
        per_step = np.concatenate([[0.0], np.cumsum(
            [len(self.problem.x0) * np.log2(self.sched.d / self.sched.numerator(t))
             for t in range(self.T)])])   # the entropy bound: log2(d/n) per parameter per step
        self.ax_bits.plot(steps, self._bits, color="0.6", lw=3, label="measured")
        self.ax_bits.plot(steps, per_step, "k--", lw=1, label="log2(1/β) per parameter per step")
        self.ax_bits.legend(loc="upper left", fontsize=8)
        (self.bits_point,) = self.ax_bits.plot([], [], "o", color="C3", ms=8, mec="k")
        self.ax_bits.set(xlabel="step t", ylabel="bits in the information buffer",
                         xlim=(0, self.T), title="what exact reversal stores")
        self.fig.tight_layout()

    def update(self, change=None):
        """Move the exact state to ``slider.value`` (forwards or backwards) and redraw."""
        self._go_to(int(self.slider.value))
        t = self.t
        path = np.array([self._xy(s) for s in range(t + 1)])
        self.path.set_data(path[:, 0], path[:, 1])
        x, bits = self.X.val, self.V.buffer.nbits
        self.point.set_data([x[0]], [x[1]])
        self.bits_point.set_data([t], [bits])
        loss = float(self.problem.train_loss(x, None, min(t, self.T - 1)))
        self.ax_path.set_title(f"step {t}: training loss {loss:.4f}")
        self.readout.value = (f"step {t} of {self.T}: x = ({x[0]:.5f}, {x[1]:.5f}), "
                              f"bits stored = {bits:.1f}, "
                              f"same bits as the forward pass: {self.matches_forward()}")
        _redraw(self.fig, self.output)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return Snapshot(self.widget, self.fig, self.readout.value)._repr_mimebundle_()


def trajectory_stepper(problem=None, *, frac_bits=DEFAULT_FRAC_BITS,
                       denominator_bits=DEFAULT_DENOMINATOR_BITS, buffer=InfoBuffer, start=0):
    """Build a ``TrajectoryStepper`` for ``problem`` (default: ``revlearn.toy.toy_problem()``,
    the 2-D valley with 50 iterations).  ``problem`` needs ``x0`` (two numbers), ``alphas``,
    ``betas`` and a ``train_loss(x, meta, t)`` that also accepts a stacked (2, n, n) grid,
    like ``revlearn.toy.ToyProblem``.  Display the result in a notebook."""
    return TrajectoryStepper(problem, frac_bits=frac_bits, denominator_bits=denominator_bits,
                             buffer=buffer, start=start)
