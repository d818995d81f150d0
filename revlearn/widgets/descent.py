"""Widget: step through the meta-iterations of gradient descent on the toy's schedules.

``descent_browser(run)`` takes a ``revlearn.descent.ScheduleDescent`` and returns
a ``DescentBrowser``: a meta-iteration slider (``revlearn.widgets.meta_browser``)
over a figure drawn by ``draw_meta_iteration``, in the spirit of the paper's
Fig. 1: the training trajectories of all meta-iterations in the plane
(coloured by meta-iteration) with the selected one in red, their training-loss
curves, the meta-loss falling, the step-size and momentum schedules, and the
size of the meta-gradient.
"""
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np

from ..toy import MINIMUM, loss_surface
from .meta_browser import HistoryBrowser, history_browser
from .snapshot import Snapshot

CMAP = "viridis"   # meta-iteration 0 dark purple ... last yellow
CURRENT = "tab:red"


def _window(run):
    pts = np.concatenate(run.trajectories + [MINIMUM[None]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.12 * (hi - lo)
    return tuple(zip(lo - pad, hi + pad))


def draw_meta_iteration(fig, run, i, shown=None):
    """Draw meta-iteration ``i`` of ``run`` into the (empty) figure ``fig``.

    ``shown``: the meta-iterations drawn in colour for comparison (default: all).
    Five panels: trajectories over the loss contours, training loss against
    the elementary iteration t, meta-loss (left axis) and |meta-gradient| (right
    axis, ``"meta_grad"``; the gradient with respect to the unconstrained log alpha_t
    and logit beta_t that the descent steps) against the meta-iteration, and the
    schedules alpha_t and beta_t of meta-iteration i (with meta-iteration 0's
    dashed).  Returns the dict of axes.
    """
    n = len(run)
    if not 0 <= i < n:
        raise ValueError(f"i must be a meta-iteration in 0..{n - 1}, got {i!r}")
    shown = range(n) if shown is None else shown
    norm = mpl.colors.Normalize(0, max(n - 1, 1))
    cmap = mpl.colormaps[CMAP]
    grid = fig.add_gridspec(2, 3)
    ax = {"path": fig.add_subplot(grid[:, 0]), "train": fig.add_subplot(grid[0, 1]),
          "meta": fig.add_subplot(grid[0, 2]), "alpha": fig.add_subplot(grid[1, 1]),
          "beta": fig.add_subplot(grid[1, 2])}
    thin = dict(lw=0.8, alpha=0.7)

    bounds = _window(run)
    U, W, Z = loss_surface(bounds, n=120)
    ax["path"].contour(U, W, Z, levels=np.geomspace(0.005, 30, 12), colors="0.75",
                       linewidths=0.6)
    t = np.arange(run.problem.T + 1)
    for j in shown:
        xs = run.trajectories[j]
        ax["path"].plot(xs[:, 0], xs[:, 1], color=cmap(norm(j)), **thin)
        ax["train"].semilogy(t, run.training_losses(j), color=cmap(norm(j)), **thin)
    xs = run.trajectories[i]
    ax["path"].plot(xs[:, 0], xs[:, 1], ".-", color=CURRENT, lw=2, ms=4,
                    label=f"meta-iteration {i}")
    ax["path"].plot(*run.problem.x0, "ks", ms=6, label="$x_0$")
    ax["path"].plot(*MINIMUM, "k*", ms=11, label="minimum of L")
    ax["path"].set(xlim=bounds[0], ylim=bounds[1], xlabel="u (weight 1)", ylabel="w (weight 2)",
                   title="training trajectories (grey: contours of L)")
    ax["path"].legend(loc="lower right", fontsize=8)
    ax["train"].semilogy(t, run.training_losses(i), color=CURRENT, lw=2)
    ax["train"].set(xlabel="elementary iteration t", ylabel="training loss $L(x_t)$",
                    title="training curves")

    # meta-loss and |meta-gradient| are in different units: one log axis each (right: gradient)
    k = np.arange(n)
    ax["meta_grad"] = ax["meta"].twinx()
    loss_line, = ax["meta"].semilogy(k, run.meta_loss, "-", color="k", lw=1.2,
                                     label="meta-loss $f = L(x_T)$ (left axis)")
    grad_line, = ax["meta_grad"].semilogy(
        k, run.grad_norm, "--", color="0.5", lw=1.2,
        label=r"|meta-gradient| w.r.t. $\log\alpha_t$, logit $\beta_t$ (right axis)")
    ax["meta"].plot([i], [run.meta_loss[i]], "o", color=CURRENT, ms=7)
    ax["meta"].set(xlabel="meta-iteration", ylabel="meta-loss $L(x_T)$",
                   title="meta-learning curve")
    ax["meta_grad"].set_ylabel(r"$|\partial f / \partial(\log\alpha, \mathrm{logit}\,\beta)|$",
                               color="0.4")
    ax["meta_grad"].tick_params(axis="y", colors="0.4")
    ax["meta"].legend(handles=[loss_line, grad_line], loc="lower left", fontsize=7)

    steps = np.arange(run.problem.T)
    for name, values in (("alpha", run.alphas), ("beta", run.betas)):
        if i != 0:
            ax[name].plot(steps, values(0), "--", color=cmap(norm(0)), lw=1.2,
                          label="meta-iteration 0")
        ax[name].plot(steps, values(i), color=CURRENT, lw=2, label=f"meta-iteration {i}")
        # the same limits for every meta-iteration, so that moving the slider compares them
        everything = np.concatenate([values(j) for j in range(n)])
        lo, hi = everything.min(), everything.max()
        pad = 0.08 * (hi - lo) if hi > lo else 0.05 * abs(hi)
        ax[name].set(xlabel="elementary iteration t", ylim=(lo - pad, hi + pad))
        ax[name].legend(loc="best", fontsize=8)
    ax["alpha"].set(ylabel=r"step size $\alpha_t$", title="learned schedules")
    ax["beta"].set(ylabel=r"momentum decay $\beta_t$")
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax["path"], aspect=30,
                 label="colour of the thin lines: meta-iteration", location="bottom")
    return ax


def _readout(run):
    def readout(history, i):
        return (f"meta-iteration {i} of {len(run) - 1}: meta-loss L(x_T) = "
                f"{run.meta_loss[i]:.3g}, |meta-gradient| = {run.grad_norm[i]:.3g}, "
                f"alpha_t in [{run.alphas(i).min():.3f}, {run.alphas(i).max():.3f}], "
                f"beta_t in [{run.betas(i).min():.3f}, {run.betas(i).max():.3f}]")
    return readout


@dataclass
class DescentBrowser:
    """The meta-iteration slider of ``descent_browser``: ``slider``, ``readout``, ``fig``,
    ``update(i)`` and ``widget``; display it, or set ``slider.value`` in a test."""
    browser: HistoryBrowser
    run: object

    @property
    def slider(self):
        return self.browser.slider

    @property
    def readout(self):
        return self.browser.readout

    @property
    def fig(self):
        return self.browser.fig

    @property
    def widget(self):
        return self.browser.widget

    def update(self, i):
        self.browser.update(i)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return Snapshot(self.widget, self.fig, self.readout.value)._repr_mimebundle_()


def descent_browser(run, start=0, figsize=(13, 6.5)):
    """A slider over the meta-iterations of a ``ScheduleDescent`` (starting at ``start``)."""
    def draw(fig, params, i):
        fig.set_layout_engine("constrained")
        draw_meta_iteration(fig, run, i)
    browser = history_browser(run.history, draw, readout=_readout(run), figsize=figsize,
                              start=start)
    return DescentBrowser(browser, run)
