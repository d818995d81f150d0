"""Why plain SGD cannot be run backwards the way momentum and Adam can.

One step of plain SGD is x_{t+1} = x_t - alpha g(x_t).  Undoing it asks for
x_t = x_{t+1} + alpha g(x_t): the gradient at the very point we are looking
for.  That is an equation in x_t (a fixed point of x -> x_{t+1} + alpha g(x)),
not a formula, and two things can go wrong with it:

* it can have several solutions: the step x -> x - alpha g(x) need not be
  one-to-one, so different x_t land on the same x_{t+1} and no algorithm can
  tell them apart (``double_well_preimages``);
* even where the solution is unique, the simple way to find it, iterating
  x <- x_{t+1} + alpha g(x), converges only when alpha times the largest
  curvature is below 1, costs a gradient per iteration, and ends near x_t, not
  on it bit for bit (``invert_sgd_step``).

Momentum and Adam escape both: their x-update uses the NEW velocity (or the
new moments), which are part of the state at t + 1, so x_t = x_{t+1} -
alpha v_{t+1} is a formula.  Plain SGD is momentum with beta = 0: it forgets
the velocity entirely, log2(1/0) = infinitely many bits per step.
"""
from dataclasses import dataclass

import autograd
import autograd.numpy as anp
import numpy as np


def double_well_grad(x):
    """Gradient of the double-well loss L(x) = x**4 / 4 - x**2 / 2 (minima at x = +-1)."""
    return x ** 3 - x


def double_well_curvature(x):
    """Second derivative of the double well, L''(x) = 3 x**2 - 1.  One SGD step x -> x -
    alpha L'(x) has slope 1 - alpha L''(x): it folds back (two starts can merge) only where
    alpha L'' > 1, and plain SGD near a point is stable while alpha L'' < 2 there."""
    return 3 * np.asarray(x, dtype=np.float64) ** 2 - 1


def double_well_preimages(x_next, alpha):
    """Every real x with x - alpha L'(x) = ``x_next`` for the double well L above.

    The step is x -> (1 + alpha) x - alpha x**3, a cubic: for |x_next| small
    enough it has three real preimages, so one SGD step has merged three
    different starting points into one.  Returned sorted (ascending).
    """
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive step size, got {alpha!r}")
    # alpha x**3 - (1 + alpha) x + x_next = 0
    roots = np.roots([alpha, 0.0, -(1.0 + alpha), float(x_next)])
    real = roots[np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots.real))].real
    return np.sort(real)


@dataclass
class FixedPointTrace:
    """The iteration x_{k+1} = x_next + alpha g(x_k) for the unknown x_t.

    ``x`` is the last iterate, ``steps[k]`` = max |x_{k+1} - x_k| (how much the
    iterate still moves), ``errors[k]`` = max |x_{k+1} - x_true| when the true
    x_t was given (else None), ``gradients`` the number of gradients evaluated.
    """
    x: np.ndarray
    steps: np.ndarray
    errors: object
    gradients: int

    def _still(self):
        # moves small enough to count as "stopped": within 1e-12 of |x|, relative
        return np.isfinite(self.steps) & (self.steps <= 1e-12 * max(1.0, float(np.max(np.abs(self.x)))))

    @property
    def converged(self):
        """True when the iterate stopped moving (last move within 1e-12 of |x|, relative)."""
        return bool(self._still()[-1])

    @property
    def converged_at(self):
        """The number of gradients after which the iterate first stopped moving (its move
        within 1e-12 of |x|, relative), or None if it never did.  From there on the error
        stays at rounding level: ends *near* x_t, not on it bit for bit."""
        still = np.flatnonzero(self._still())
        return int(still[0]) + 1 if len(still) else None


def invert_sgd_step(grad, x_next, alpha, n_iters, *, x_true=None):
    """Try to undo one SGD step by fixed-point iteration: x <- x_next + alpha grad(x).

    ``grad(x)`` is the gradient the forward step used, ``x_next`` = x_{t+1}.
    The iteration starts at x_next itself (the best guess we have) and runs
    ``n_iters`` times, each costing one gradient.  Its error shrinks by about
    alpha * (largest Hessian eigenvalue) per iteration, so it converges only
    if that product is below 1; at larger steps -- which plain SGD trains with
    happily up to 2 -- it diverges, although x_t exists.  Returns a
    ``FixedPointTrace``.
    """
    if isinstance(n_iters, bool) or not isinstance(n_iters, (int, np.integer)) or n_iters < 1:
        raise ValueError(f"n_iters must be a whole number >= 1, got {n_iters!r}")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a step size >= 0, got {alpha!r}")
    x_next = np.asarray(x_next, dtype=np.float64)
    x = x_next.copy()
    steps, errors = [], []
    with np.errstate(all="ignore"):     # a diverging iteration is one of the outcomes we show
        for _ in range(int(n_iters)):
            new = x_next + alpha * np.asarray(grad(x), dtype=np.float64)
            steps.append(float(np.max(np.abs(new - x))))
            x = new
            if x_true is not None:
                errors.append(float(np.max(np.abs(x - x_true))))
            if not np.isfinite(x).all():
                break
    clean = lambda v: np.where(np.isfinite(v), v, np.inf)   # NaN (overflow) counts as inf
    return FixedPointTrace(x=x, steps=clean(np.array(steps)),
                           errors=None if x_true is None else clean(np.array(errors)),
                           gradients=len(steps))


def largest_curvature(loss, x, n_iters=100, seed=0):
    """The largest eigenvalue (in magnitude) of the Hessian of ``loss`` at ``x``, by power
    iteration on autograd's Hessian-vector products.

    The fixed-point iteration of ``invert_sgd_step`` contracts when alpha times this
    number is below 1; plain SGD itself stays stable up to 2.  Returns the Rayleigh
    quotient v.Hv of the last unit vector v (negative for a direction of negative
    curvature that dominates).
    """
    if isinstance(n_iters, bool) or not isinstance(n_iters, (int, np.integer)) or n_iters < 1:
        raise ValueError(f"n_iters must be a whole number >= 1, got {n_iters!r}")
    x = np.asarray(x, dtype=np.float64)
    g = autograd.grad(loss)
    hvp = autograd.grad(lambda y, v: anp.dot(g(y), v))
    v = np.random.default_rng(seed).standard_normal(x.shape)
    v /= np.linalg.norm(v)
    for _ in range(int(n_iters)):
        w = np.asarray(hvp(x, v))
        norm = np.linalg.norm(w)
        if norm == 0:
            return 0.0
        v = w / norm
    return float(np.dot(v, np.asarray(hvp(x, v))))
