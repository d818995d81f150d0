"""The 2-D toy problem: momentum SGD down a curved, non-convex valley.

The paper's Fig. 1 uses a model with two weights so that whole training
trajectories fit in one picture (it does not give the function).  Ours walks
down the valley

    L(u, w) = 2 (w - sin u)^2 + 0.1 (u - 1)^2,

steep across the curve w = sin u and gently tilted along it towards its single
minimum at (1, sin 1).  The curved floor makes L non-convex (off the floor
the Hessian can have a negative eigenvalue, e.g. at (pi/2, 0)), and momentum
overshoots and swings around the bends.  With two parameters every step of
training, forwards or backwards, can be drawn as a point in the plane.
"""
from dataclasses import dataclass

import autograd.numpy as np
import numpy as onp

STEEPNESS = 2.0    # how sharply the walls rise across the valley floor w = sin(u)
TILT = 0.1         # how gently the floor slopes down towards u = 1
MINIMUM = onp.array([1.0, onp.sin(1.0)])
X0 = (-3.0, 1.5)   # start high on the valley's left wall
BOUNDS = ((-4.6, 3.0), (-2.0, 2.2))   # a window that holds the default trajectory


def valley_loss(x, meta=None, t=0):
    """The toy training loss L(x) for x = (u, w); ``meta`` and ``t`` are ignored.

    It has the signature revlearn's engine expects (``train_loss(x, meta, t)``)
    and is written with autograd.numpy, so it can be differentiated twice.  It
    also accepts a stacked grid ``x`` of shape (2, ...) and returns L at every
    grid point, which is how the contour plots are made.
    """
    u, w = x[0], x[1]
    return STEEPNESS * (w - np.sin(u)) ** 2 + TILT * (u - 1.0) ** 2


def valley_meta_loss(x, meta=None):
    """The meta-objective: the training loss where training ended, L(x_T)."""
    return valley_loss(x)


@dataclass
class ToyProblem:
    """Everything needed to train on the valley: start, schedules and losses.

    ``alphas``/``betas`` hold one step size and one momentum decay per
    iteration; ``train_loss``/``meta_loss`` plug straight into
    ``revlearn.hypergrad``, ``revlearn.train`` and ``revlearn.reverse_naive``.
    """
    x0: onp.ndarray
    alphas: onp.ndarray
    betas: onp.ndarray
    train_loss: object = valley_loss
    meta_loss: object = valley_meta_loss

    @property
    def T(self):
        """Number of training iterations."""
        return len(self.alphas)


def toy_problem(T=50, alpha=0.5, beta=0.9, x0=X0):
    """Our stand-in for the toy of the paper's Fig. 1: T (default 50) iterations of
    momentum SGD with constant step size ``alpha`` and decay ``beta`` from ``x0``.

    Raises ``ValueError`` for a bad T, step size, decay or starting point.
    """
    if not isinstance(T, (int, onp.integer)) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be a positive integer number of iterations, got {T!r}")
    if not (onp.isfinite(alpha) and alpha > 0):
        raise ValueError(f"the step size alpha must be a positive number, got {alpha!r}")
    if not (onp.isfinite(beta) and 0 < beta <= 1):
        raise ValueError(f"the momentum decay beta must lie in (0, 1], got {beta!r}")
    start = onp.asarray(x0, dtype=onp.float64)
    if start.shape != (2,) or not onp.isfinite(start).all():
        raise ValueError(f"x0 must be two finite numbers (u, w), got {x0!r}")
    return ToyProblem(x0=start.copy(), alphas=onp.full(int(T), float(alpha)),
                      betas=onp.full(int(T), float(beta)))


def loss_surface(bounds=BOUNDS, n=160):
    """Grid coordinates ``U, W`` and loss values ``Z`` (each n x n) for contour plots."""
    (u0, u1), (w0, w1) = bounds
    U, W = onp.meshgrid(onp.linspace(u0, u1, n), onp.linspace(w0, w1, n))
    return U, W, valley_loss(onp.stack([U, W]))
