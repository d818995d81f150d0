"""Gradient descent on the learning-rate and momentum schedules of the 2-D toy (the paper's Fig. 1).

One *meta-iteration* trains the toy valley (``revlearn.toy``) from the same
x_0 with the current schedules alpha_t, beta_t (t = 0..T-1), evaluates the
meta-loss f = L(x_T) (the toy's loss where training ends; it has no
validation set), computes the exact hypergradient of f with respect to every
alpha_t and beta_t by running training backwards (``revlearn.hypergrad``),
and takes one step of gradient descent on the schedules.

The step is taken on unconstrained numbers, log alpha_t and logit beta_t
(``revlearn.parameterize``), so that a step can never make a step size
negative or a decay leave (0, 1); autograd pulls the hypergradient back
through exp and the sigmoid.  ``descend_schedules`` runs the loop with
``revlearn.meta.meta_optimize`` and keeps every training trajectory, so that
successive meta-iterations can be drawn in the plane.
"""
from dataclasses import dataclass, field

import numpy as np

from .meta import MetaHistory, meta_optimize
from .parameterize import exp_alphas, hypergrad_through, logit, sigmoid_betas
from .rational import DEFAULT_DENOMINATOR_BITS, rational_value
from .toy import ToyProblem, toy_problem
from .training import train


def schedule_params(alphas, betas):
    """The unconstrained parameters of a pair of schedules: ``{"log_alphas", "logit_betas"}``."""
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim != 1 or not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError("alphas must be a 1-D schedule of positive step sizes (their logs are "
                         f"optimized), got {alphas!r:.80}")
    return {"log_alphas": np.log(a), "logit_betas": logit(betas)}


def schedules_from(params):
    """``(alphas, betas)`` from ``{"log_alphas", "logit_betas"}``, differentiable by autograd."""
    return exp_alphas(params["log_alphas"]), sigmoid_betas(params["logit_betas"])


def _build(problem):
    def build(params):
        alphas, betas = schedules_from(params)
        return {"x0": problem.x0, "alphas": alphas, "betas": betas, "meta": None}
    return build


def schedule_objective(problem, params, *, callback=None,
                       denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """The meta-loss f = L(x_T) of ``problem`` trained with the schedules ``params``, and
    its exact gradient with respect to log alpha_t and logit beta_t.

    Returns ``(value, grad, result)``: grad is a dict shaped like ``params``,
    result the ``HypergradResult`` (d_alphas, d_betas, ...).  ``callback(t, X, V)``
    sees the exact training state after every step (as in ``revlearn.hypergrad``).
    """
    return hypergrad_through(_build(problem), params, problem.train_loss, problem.meta_loss,
                             callback=callback, denominator_bits=denominator_bits)


def float_meta_loss(problem, params, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """The same meta-loss from plain float training (``revlearn.train``): the oracle
    for finite differences.  With ``denominator_bits`` the decays are rounded to the
    fractions n/d that exact training uses; ``None`` uses them as they are."""
    alphas, betas = (np.asarray(s, dtype=np.float64) for s in schedules_from(params))
    res = train(problem.train_loss, problem.x0, alphas, betas, denominator_bits=denominator_bits)
    return float(problem.meta_loss(res.x_final))


@dataclass
class ScheduleDescent:
    """A run of ``descend_schedules``: meta-iteration i trained with ``history.params[i]``.

    ``history`` is the ``revlearn.meta.MetaHistory`` (meta-loss and gradient norm
    per meta-iteration); ``trajectories[i]`` holds x_0 .. x_T of meta-iteration i's
    training run, shape (T + 1, 2).
    """
    problem: ToyProblem
    history: MetaHistory
    trajectories: list = field(default_factory=list)

    def __len__(self):
        return len(self.history)

    @property
    def meta_loss(self):
        """f = L(x_T) at each meta-iteration."""
        return np.array(self.history.meta_loss)

    @property
    def grad_norm(self):
        """|df / d(log alpha, logit beta)| at each meta-iteration."""
        return np.array(self.history.grad_norm)

    def alphas(self, i):
        """The step sizes alpha_t that meta-iteration i trained with."""
        return np.asarray(schedules_from(self.history.params[i])[0], dtype=np.float64)

    def betas(self, i):
        """The momentum decays meta-iteration i trained with: the fractions n/d exact training uses."""
        return rational_value(np.asarray(schedules_from(self.history.params[i])[1]))

    def training_losses(self, i):
        """L(x_t) along meta-iteration i's training run, t = 0..T."""
        xs = self.trajectories[i]
        return np.asarray(self.problem.train_loss(xs.T, None, 0))


def descend_schedules(problem=None, *, n_iters=60, step_size=0.5, method="sgd", progress=True):
    """Run ``n_iters`` meta-iterations of gradient descent on the schedules of ``problem``.

    ``problem`` is a ``revlearn.toy.ToyProblem`` (default: ``toy_problem(alpha=0.1)``,
    a cautious start); its ``alphas`` and ``betas`` are the starting schedules.
    ``method`` and ``step_size`` go to ``revlearn.meta.meta_optimize`` ("sgd": plain
    gradient descent on log alpha_t and logit beta_t, as in the paper's Fig. 1).
    Returns a ``ScheduleDescent``.
    """
    problem = toy_problem(alpha=0.1) if problem is None else problem
    if np.shape(problem.x0) != (2,):
        raise ValueError(f"descend_schedules draws 2-D problems: x0 must hold two numbers, got "
                         f"shape {np.shape(problem.x0)}")
    trajectories = []

    def objective(params, i):
        xs = [np.array(problem.x0, dtype=np.float64)]
        value, grad, _ = schedule_objective(problem, params,
                                            callback=lambda t, X, V: xs.append(X.val.copy()))
        trajectories.append(np.array(xs))
        return value, grad, {}

    history = meta_optimize(objective, schedule_params(problem.alphas, problem.betas),
                            n_iters=n_iters, step_size=step_size, method=method,
                            progress=progress)
    return ScheduleDescent(problem, history, trajectories)
