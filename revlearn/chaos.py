"""The chaotic meta-loss surface: final loss and its exact hypergradient against log alpha.

Train the same small network from the same initial weights with many step
sizes alpha, and plot the final training loss against log alpha together with
its exact derivative (from ``revlearn.hypergrad``).  For short runs the curve
is smooth.  For longer runs it turns rough and the hypergradient explodes: the
training dynamics are chaotic, a tiny change in alpha grows by a factor of
about e**(lambda * T) over T iterations, where lambda is the finite-time
Lyapunov exponent of training.  The gradient stays exact -- it is the slope of
the curve -- but it only describes the curve on scales of log alpha below
about e**(-lambda * T).  (Maclaurin et al. 2015, section 4 and Fig. 10.)

A sweep of hundreds of alphas runs as ONE hypergradient computation: the
network is copied once per alpha into one long parameter vector (the copies
never interact), and each copy is its own step-size group (``hypergrad``'s
``groups``), so one reverse pass returns the derivative for every alpha.
"""
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from .autodiff import check_finite, flat_meta, train_gradient, train_hvp
from .datasets import Dataset, load_digits
from .hypergrad import hypergrad
from .meta import first_growth
from .models import MLP
from .progress import Progress
from .training import as_vector as _as_vector
from .schedules import Schedule

# The paper's Fig. 10 (on MNIST, which revlearn cannot download for you).
PAPER_SETTINGS = dict(layer_sizes=(784, 200, 50, 10), n_train=1000, batch_size=250, T=50,
                      beta=0.9, log_alphas=np.linspace(0.5, 2.5, 1000))


@dataclass
class ChaosProblem:
    """One training setup whose step size we sweep.

    A network ``net`` trained by momentum SGD (decay ``beta``) on minibatches
    of ``batch_size`` examples from ``data``, always from the same initial
    weights ``x0``.  ``seed`` fixes the minibatch order, so the only thing that
    changes from one point of a sweep to the next is alpha.
    """
    net: MLP
    data: Dataset
    batch_size: int
    beta: float
    x0: np.ndarray
    seed: int = 0

    def __post_init__(self):
        self.targets = self.data.targets   # one-hot, computed once

    def train_loss(self, x, meta, t):
        """Minibatch loss of one network at iteration t (``meta`` is unused)."""
        inputs, targets = self.data.batch(t, self.batch_size, self.seed)
        return self.net.loss(x, inputs, targets)

    def final_loss(self, x):
        """The quantity we plot: the loss on the whole training set."""
        return self.net.loss(x, self.data.inputs, self.targets)


def make_problem(layer_sizes=(64, 20, 10), n_train=300, batch_size=100, beta=0.9,
                 init_scale=1.0, data=None, seed=0):
    """A ``ChaosProblem`` on the first ``n_train`` of the digits (seeded shuffle).

    Initial weights are ``init_scale / sqrt(fan_in)`` times fixed normal noise.
    Pass ``data`` (a ``Dataset``, e.g. MNIST from ``load_mnist``) to use other
    data; its first ``n_train`` examples are used.
    """
    if data is None:
        data = load_digits()
        perm = np.random.default_rng(seed).permutation(len(data))
        data = Dataset(data.inputs[perm], data.labels[perm])
    if not (1 <= n_train <= len(data)):
        raise ValueError(f"n_train must be in 1..{len(data)}, got {n_train}")
    data = Dataset(data.inputs[:n_train], data.labels[:n_train])
    net = MLP(layer_sizes)
    if net.layer_sizes[0] != data.inputs.shape[1]:
        raise ValueError(f"the network takes {net.layer_sizes[0]} inputs but the data have "
                         f"{data.inputs.shape[1]} features")
    x0 = net.init(init_scale / np.sqrt(net.fan_in), seed=seed)
    return ChaosProblem(net, data, int(batch_size), float(beta), x0, seed)


class Copies:
    """``n_copies`` independent copies of a problem's network in one flat vector.

    The training loss is the sum of the copies' losses, so each copy's
    gradient is exactly its own network's gradient.  ``groups`` puts each copy
    in its own group, so every copy can have its own step-size schedule, and
    ``hypergrad`` sums each copy's derivatives separately: one exact forward
    and reverse pass gives every copy's hypergradient, each exactly that of a
    single run.
    """

    def __init__(self, problem, n_copies):
        self.problem = problem
        self.K = int(n_copies)
        self.P = problem.net.n_params
        # Where each layer's W (fan_in x fan_out) and b start inside one copy (MLP order: W1, b1, W2, ...).
        self.layers, offset = [], 0
        for m, n in zip(problem.net.layer_sizes[:-1], problem.net.layer_sizes[1:]):
            self.layers.append((offset, m, n))
            offset += m * n + n

    @property
    def x0(self):
        """The same initial weights for every copy."""
        return np.tile(self.problem.x0, self.K)

    @property
    def groups(self):
        """Group id of every parameter: k for all of copy k's parameters."""
        return np.repeat(np.arange(self.K), self.P)

    def schedules(self, log_alphas, T):
        """Constant T x K schedules: alphas exp(log_alphas[k]) and the problem's beta."""
        alphas = np.tile(np.exp(np.asarray(log_alphas, dtype=float)), (int(T), 1))
        return alphas, np.full_like(alphas, self.problem.beta)

    def losses(self, x, inputs, targets):
        """Mean negative log-likelihood of each copy: an array of K losses."""
        X = anp.reshape(x, (self.K, self.P))
        h = inputs[None]
        for i, (o, m, n) in enumerate(self.layers):
            W = anp.reshape(X[:, o:o + m * n], (self.K, m, n))
            h = anp.matmul(h, W) + X[:, None, o + m * n:o + m * n + n]
            if i < len(self.layers) - 1:
                h = anp.tanh(h)
        h = h - np.max(getval(h), axis=2, keepdims=True)   # a constant shift: stability only
        logp = h - anp.log(anp.sum(anp.exp(h), axis=2, keepdims=True))
        return -anp.sum(logp * targets[None], axis=(1, 2)) / inputs.shape[0]

    def train_loss(self, x, meta, t):
        """Sum over copies of their minibatch losses at iteration t (``meta`` unused)."""
        p = self.problem
        inputs, targets = p.data.batch(t, p.batch_size, p.seed)
        return anp.sum(self.losses(x, inputs, targets))

    def meta_loss(self, x, meta):
        """Sum over copies of the final loss on the whole training set."""
        return anp.sum(self.losses(x, self.problem.data.inputs, self.problem.targets))

    def split(self, x):
        """The flat vector as a K x n_params array, one row per copy."""
        return np.reshape(x, (self.K, self.P))


@dataclass
class Sweep:
    """Final training loss and its exact derivative d loss / d log alpha, per point."""
    log_alphas: np.ndarray
    T: int
    loss: np.ndarray
    hypergrad: np.ndarray
    exact: bool           # every reverse pass recovered x_0 and v_0 bit for bit


def _chunks(n, size):
    size = n if size is None else max(1, int(size))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _log_alphas(log_alphas):
    la = np.asarray(log_alphas, dtype=np.float64)
    if la.ndim != 1 or len(la) == 0 or not np.isfinite(la).all():
        raise ValueError("log_alphas must be a non-empty 1-D array of finite numbers")
    return la


def sweep(problem, log_alphas, T, *, chunk=200, progress=False):
    """Train for T iterations at every log alpha; return a ``Sweep``.

    Each point's loss and hypergradient come from ``revlearn.hypergrad`` (one
    exact forward and reverse pass for up to ``chunk`` points at a time: a
    smaller chunk needs less memory, a larger one has less Python overhead).
    """
    la = _log_alphas(log_alphas)
    if int(T) < 1:
        raise ValueError(f"T must be a positive number of iterations, got {T}")
    loss, grad, exact = np.empty_like(la), np.empty_like(la), True
    parts = _chunks(len(la), chunk)
    if progress:
        parts = Progress(parts, desc=f"T={T}", leave=False)
    for part in parts:
        copies = Copies(problem, len(la[part]))
        alphas, betas = copies.schedules(la[part], T)
        res = hypergrad(copies.train_loss, copies.meta_loss, copies.x0, alphas, betas,
                        groups=copies.groups)
        loss[part] = copies.losses(res.x_final, problem.data.inputs, problem.targets)
        # d/d log alpha = alpha * (sum over iterations of d/d alpha_t): the chain rule.
        grad[part] = alphas[0] * res.d_alphas.sum(axis=0)
        exact &= res.exact
    return Sweep(la, int(T), loss, grad, exact)


def total_variation(log_alphas, values):
    """Total up-and-down movement of a curve per unit of log alpha.

    Sum of |values[i+1] - values[i]| divided by the width of the log alpha
    range.  For a monotone curve it is just (change in value) / (width); every
    extra wiggle adds to it.  It grows with the grid's resolution for a rough
    curve, so compare curves on the same grid.
    """
    la = np.asarray(log_alphas, dtype=float)
    return float(np.sum(np.abs(np.diff(values))) / (la[-1] - la[0]))


def roughness(values):
    """Total variation over range: 1 for a monotone curve, ~1 + 2 per extra wiggle.

    A dimensionless count of how often the curve turns around: a smooth valley
    scores 2, noise on a grid of N points can score up to about N.
    """
    v = np.asarray(values, dtype=float)
    span = v.max() - v.min()
    return float(np.sum(np.abs(np.diff(v))) / span) if span > 0 else 1.0


def secant_agreement(s):
    """Fraction of grid intervals where the exact hypergradient predicts the
    direction in which the loss moves to the next grid point.

    For each interval we compare the sign of the loss change with the sign of
    the average of the two end points' exact derivatives.  Near 1 the gradient
    is a good guide at the grid's resolution; near 0.5 it is no better than a
    coin flip (the curve is rough on scales finer than the grid).
    """
    dloss = np.diff(s.loss)
    slope = 0.5 * (s.hypergrad[1:] + s.hypergrad[:-1])
    return float(np.mean(np.sign(dloss) == np.sign(slope)))


def smoothed_slopes(s, n_window):
    """Average the loss over a sliding window of ``n_window`` grid points; return
    ``(centres, trend, exact)``.

    ``exact`` is the exact derivative of the averaged curve -- the average of
    the window's exact hypergradients, since the derivative of an average is
    the average of the derivatives.  ``trend`` is the slope of the averaged
    curve measured across neighbouring grid points.  On a smooth curve the two
    agree.  On a chaotic one averaging n_window points shrinks the wiggles only
    by about sqrt(n_window) while they are of size e**(lambda T), so the exact
    derivative stays huge and says nothing about the trend.
    """
    w = int(n_window)
    if not (1 <= w <= len(s.loss) - 2):
        raise ValueError(f"n_window must be in 1..{len(s.loss) - 2}, got {n_window}")
    box = np.ones(w) / w
    centres = np.convolve(s.log_alphas, box, "valid")
    averaged = np.convolve(s.loss, box, "valid")
    return centres, np.gradient(averaged, centres), np.convolve(s.hypergrad, box, "valid")


@dataclass
class Lyapunov:
    """How a small perturbation of the training state grows, step by step.

    ``log_growth[t, k]`` is log(|delta_{t+1}| / |delta_t|) for block k (one
    block per sweep point).  The finite-time Lyapunov exponent after T steps
    is the mean of the first T rows: a perturbation grows like
    exp(exponent * T).  Positive means chaos: nearby runs separate
    exponentially.  Negative means nearby runs converge.
    """
    log_growth: np.ndarray

    def exponent(self, T=None):
        """Finite-time Lyapunov exponent after T steps (default: all), per block."""
        T = len(self.log_growth) if T is None else int(T)
        if not (1 <= T <= len(self.log_growth)):
            raise ValueError(f"T must be in 1..{len(self.log_growth)}, got {T}")
        return self.log_growth[:T].mean(axis=0)


def finite_time_lyapunov(train_loss, x0, alphas, betas, meta=None, *, groups=None, n_blocks=1,
                         v0=None, denominator_bits=16, seed=0):
    """Estimate the finite-time Lyapunov exponent of momentum SGD on ``train_loss``.

    Trains in floats (same arguments as ``revlearn.train``) and carries along
    a small random perturbation of the weights (delta_x random, delta_v = 0:
    a changed hyperparameter, too, first shows up in the weights), moved by
    the linearized step

        delta_v' = beta delta_v - (1 - beta) H_t delta_x
        delta_x' = delta_x + alpha delta_v'

    (H_t the training-loss Hessian at x_t: one Hessian-vector product per
    step), and rescaled to length 1 after every step.  The logs of the
    rescaling factors are returned in a ``Lyapunov``.  The parameter vector is
    split into ``n_blocks`` equal blocks (independent copies), each with its own
    perturbation and growth.
    """
    x = _as_vector(x0, "x0")
    v = np.zeros_like(x) if v0 is None else _as_vector(v0, "v0", len(x))
    if n_blocks < 1 or len(x) % n_blocks:
        raise ValueError(f"n_blocks must divide the {len(x)} parameters into equal blocks, "
                         f"got {n_blocks}")
    sched = Schedule(alphas, betas, len(x), groups, denominator_bits)
    m, unflatten = flat_meta(meta)
    hvp = train_hvp(train_gradient(train_loss, unflatten))
    rng = np.random.default_rng(seed)
    dx, dv = rng.standard_normal(len(x)), np.zeros(len(x))   # perturb the weights only
    dx, dv, _ = _renormalize(dx, dv, n_blocks)
    log_growth = np.empty((sched.T, n_blocks))
    for t in range(sched.T):
        a, b = sched.alpha(t), sched.beta(t)
        g, vjp = hvp(x, m, t)
        check_finite(g, t)
        Hdx = np.asarray(vjp(dx)[0])   # Hessian is symmetric: H dx is the VJP of the gradient
        v = b * v - (1 - b) * g
        x = x + a * v
        dv = b * dv - (1 - b) * Hdx
        dx = dx + a * dv
        dx, dv, log_growth[t] = _renormalize(dx, dv, n_blocks)
    return Lyapunov(log_growth)


def _renormalize(dx, dv, n_blocks):
    """Scale each block of (dx, dv) to unit length; return the logs of the old lengths."""
    sq = (dx ** 2 + dv ** 2).reshape(n_blocks, -1).sum(axis=1)
    norm = np.sqrt(sq)
    if not (np.isfinite(norm).all() and (norm > 0).all()):
        raise FloatingPointError("the perturbation became 0, NaN or inf; training diverged")
    scale = np.repeat(1.0 / norm, len(dx) // n_blocks)
    return dx * scale, dv * scale, np.log(norm)


def sweep_lyapunov(problem, log_alphas, T, *, seed=0, chunk=200):
    """Finite-time Lyapunov exponents along a sweep: a ``Lyapunov`` with one
    column per log alpha (``.exponent(T)`` for any T up to the one given)."""
    la = _log_alphas(log_alphas)
    out = np.empty((int(T), len(la)))
    for part in _chunks(len(la), chunk):
        copies = Copies(problem, len(la[part]))
        alphas, betas = copies.schedules(la[part], T)
        lyap = finite_time_lyapunov(copies.train_loss, copies.x0, alphas, betas,
                                    groups=copies.groups, n_blocks=copies.K,
                                    seed=[seed, part.start])
        out[:, part] = lyap.log_growth
    return Lyapunov(out)


@dataclass
class LogAlphaDescent:
    """A run of ``descend_log_alpha``: what each meta-iteration i saw.

    ``log_alphas[i]`` was evaluated, giving the final training loss ``loss[i]`` and
    its exact derivative ``hypergrad[i]``; the step from it led to
    ``log_alphas[i + 1]``.  ``stopped_at`` is the meta-iteration at which the stop
    rule fired (no step was taken from it), ``failure`` says why a run ended early
    because training could not be run (None if it did not).
    """
    log_alphas: np.ndarray
    loss: np.ndarray
    hypergrad: np.ndarray
    T: int
    step_size: float
    stopped_at: int = None
    failure: str = None

    def __len__(self):
        return len(self.loss)

    @property
    def best(self):
        """The meta-iteration with the lowest loss: the result to keep."""
        return int(np.argmin(self.loss))


def descend_log_alpha(problem, log_alpha, T, *, step_size, n_iters, stop_growth=None):
    """Plain gradient descent on one constant step size, in log alpha, with exact
    hypergradients: log alpha <- log alpha - step_size * d loss / d log alpha.

    Each of at most ``n_iters`` meta-iterations trains ``problem`` for T steps from
    the same initial weights (``sweep`` at one point).  With ``stop_growth`` (e.g.
    2) the run stops at the first meta-iteration whose |gradient| is more than
    ``stop_growth`` times the smallest so far (``first_growth``).  A step that
    throws alpha out of range (training overflows) ends the run, recorded in
    ``failure``.  Returns a ``LogAlphaDescent``.
    """
    if isinstance(n_iters, bool) or not isinstance(n_iters, (int, np.integer)) or n_iters < 1:
        raise ValueError(f"n_iters must be a whole number >= 1, got {n_iters!r}")
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")
    la = float(_log_alphas([log_alpha])[0])
    seen, loss, grad = [], [], []
    stopped, failure = None, None
    for i in range(int(n_iters)):
        if la > np.log(np.finfo(float).max):
            failure = f"log alpha = {la:.3g}: alpha overflows a float"
            break
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # overflow is caught below
                s = sweep(problem, [la], T)
        except (OverflowError, FloatingPointError) as e:
            failure = f"training diverged at log alpha = {la:.3g} ({type(e).__name__})"
            break
        seen.append(la)
        loss.append(s.loss[0])
        grad.append(s.hypergrad[0])
        if stop_growth is not None and first_growth(grad, stop_growth) == i:
            stopped = i
            break
        la = la - step_size * s.hypergrad[0]
    return LogAlphaDescent(np.array(seen), np.array(loss), np.array(grad), int(T),
                           float(step_size), stopped, failure)
