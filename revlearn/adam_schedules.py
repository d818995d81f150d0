"""Learning Adam's step sizes per layer and per iteration with exact hypergradients.

The experiment of notebook 11, following the paper's protocol for schedules
(and notebook 06's for momentum): the meta-objective is the *training* loss
on the whole training set after T steps (the schedule is judged on how well
it optimizes, not on how it regularizes); every hypergradient evaluation
draws a fresh seed for the initial weights and the order of the minibatches;
the result is judged on seeds no tuning ever saw, as mean ± sd, against the
best constant step size from a grid scored on the same objective.

Adam's decays stay fixed (beta1, beta2, eps: PyTorch's defaults); only log
alpha is learned, one value per iteration and parameter group (each layer's
weights and biases), so the schedule stays positive.
``revlearn.parameterize.hypergrad_through`` speaks momentum's keys (x0,
alphas, betas), so the chain rule through alpha = exp(log alpha) is applied
here by hand: d meta / d log alpha = alpha * d meta / d alpha.
"""
from dataclasses import dataclass

import numpy as np

from .adam import Adam
from .datasets import Dataset, Splits, digits_splits
from .evaluation import on_seeds
from .hypergrad import hypergrad
from .models import MLP
from .training import train


def log_alpha_hypergrad(train_loss, meta_loss, x0, log_alphas, beta1s, beta2s, *, eps=1e-8,
                        meta=None, groups=None, **hypergrad_kwargs):
    """Exact meta-loss of Adam training with alpha = exp(``log_alphas``), and its gradient
    with respect to ``log_alphas`` (same shape).

    ``beta1s``, ``beta2s`` are schedules shaped like ``log_alphas`` (length T, or
    T x G with ``groups``).  Returns ``(value, d value / d log_alphas, result)``
    with ``result`` the ``HypergradResult`` of ``revlearn.hypergrad``.
    """
    log_alphas = np.asarray(log_alphas, dtype=np.float64)
    if not np.isfinite(log_alphas).all():
        raise ValueError("log_alphas must be finite numbers (alpha = exp(log alpha))")
    alphas = np.exp(log_alphas)
    r = hypergrad(train_loss, meta_loss, x0, meta=meta, groups=groups,
                  optimizer=Adam(alphas, beta1s, beta2s, eps), **hypergrad_kwargs)
    return r.meta_loss, alphas * np.asarray(r.d_optimizer.alphas), r


@dataclass
class AdamScheduleTask:
    """A classifier trained with Adam on ``data``, seeded: seed s fixes the initial
    weights (noise / sqrt(fan_in)) and the order of the minibatches.

    ``T`` steps of batches of ``batch``; the meta-objective is the mean negative
    log-likelihood on the whole training set after training.
    """
    data: object
    model: MLP
    T: int
    batch: int
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    @property
    def G(self):
        return self.model.n_groups

    def train_loss(self, seed):
        """train_loss(x, meta, t): the loss on minibatch t of seed ``seed``."""
        def train_loss(x, meta, t):
            inputs, targets = self.data.train.batch(t, self.batch, seed=seed)
            return self.model.loss(x, inputs, targets)
        return train_loss

    def meta_loss(self, x, meta=None):
        """The paper's meta-objective for schedules: the loss on the whole training set."""
        return self.model.loss(x, self.data.train.inputs, self.data.train.targets)

    def x0(self, seed):
        """Initial weights for ``seed``: standard-normal noise scaled by 1/sqrt(fan_in)."""
        return self.model.init(1 / np.sqrt(self.model.fan_in), seed=seed)

    def decays(self, shape):
        """beta1 and beta2 as constant schedules of ``shape``."""
        return np.full(shape, self.beta1), np.full(shape, self.beta2)

    def _alphas(self, alphas):
        """A number (one constant), a G-vector (per-group constants) or a T x G schedule,
        as (schedule, groups)."""
        a = np.asarray(alphas, dtype=np.float64)
        if a.ndim == 0:
            return np.full(self.T, float(a)), None
        if a.shape == (self.G,):
            return np.tile(a, (self.T, 1)), self.model.groups
        if a.shape == (self.T, self.G):
            return a, self.model.groups
        raise ValueError(f"alphas must be one number, {self.G} per-group numbers or a "
                         f"{self.T} x {self.G} schedule, got shape {a.shape}")

    def objective(self, params, i):
        """For ``revlearn.meta.meta_optimize``: ``params = {"log_alphas": T x G}``; meta-
        iteration i trains with seed i (a fresh seed at every hypergradient evaluation)."""
        log_alphas = np.asarray(params["log_alphas"], dtype=np.float64)
        if log_alphas.shape != (self.T, self.G):
            raise ValueError(f"params['log_alphas'] must have shape ({self.T}, {self.G}), got "
                             f"{log_alphas.shape}")
        b1, b2 = self.decays(log_alphas.shape)
        value, grad, r = log_alpha_hypergrad(self.train_loss(i), self.meta_loss, self.x0(i),
                                             log_alphas, b1, b2, eps=self.eps,
                                             groups=self.model.groups)
        test = self.data.test
        return value, {"log_alphas": grad}, {
            "train_loss": value,
            "test_loss": float(self.model.loss(r.x_final, test.inputs, test.targets))}

    def per_group_objective(self, params, i):
        """Like ``objective``, for per-group *constant* step sizes: ``params = {"log_alphas":
        G-vector}``, one log alpha per group for the whole run (the baseline that separates
        per-layer scale from the shape in time).  Its gradient is the schedule's gradient
        summed over the T iterations (every iteration's alpha is the same number)."""
        log_alphas = np.asarray(params["log_alphas"], dtype=np.float64)
        if log_alphas.shape != (self.G,):
            raise ValueError(f"params['log_alphas'] must have shape ({self.G},), one per group "
                             f"{self.model.group_names}, got {log_alphas.shape}")
        value, grad, info = self.objective({"log_alphas": np.tile(log_alphas, (self.T, 1))}, i)
        return value, {"log_alphas": grad["log_alphas"].sum(axis=0)}, info

    def evaluate(self, alphas, seed):
        """Plain float Adam training with ``alphas`` (see ``_alphas``) on ``seed``, the
        decays rounded to the fractions n/d exact training uses.  Returns the training
        loss (the objective), test loss and test accuracy; a run that diverged to
        inf/NaN scores inf (accuracy 0)."""
        schedule, groups = self._alphas(alphas)
        b1, b2 = self.decays(schedule.shape)
        try:
            x = train(self.train_loss(seed), self.x0(seed), optimizer=Adam(schedule, b1, b2,
                                                                           self.eps),
                      groups=groups, denominator_bits=16).x_final
        except FloatingPointError:
            return {"train loss": np.inf, "test loss": np.inf, "test accuracy": 0.0}
        test = self.data.test
        loss = float(self.meta_loss(x))
        if not np.isfinite(loss):
            return {"train loss": np.inf, "test loss": np.inf, "test accuracy": 0.0}
        return {"train loss": loss,
                "test loss": float(self.model.loss(x, test.inputs, test.targets)),
                "test accuracy": self.model.accuracy(x, test.inputs, test.labels)}

    def grid(self, log_alphas, seeds):
        """The training loss of every constant alpha = exp(la), la in ``log_alphas``, on
        ``seeds``: {la: Spread}."""
        return {float(la): on_seeds(lambda s: self.evaluate(np.exp(la), s)["train loss"], seeds)
                for la in log_alphas}


def centered_digits(n_train=1200, seed=0):
    """The 8x8 digits split into ``n_train`` training digits and the rest as a test set,
    each pixel centred on its training mean, and pixels constant over the training set
    (always blank) dropped: 61 inputs instead of 64.

    Standard preprocessing: with centred inputs the first layer's weight updates do
    not all lean the same way (LeCun et al., "Efficient BackProp", 1998), and a pixel that is blank in every training digit carries no information
    (its weights get a gradient of exactly 0 for ever).  Exact Adam does not need
    it: it matches float Adam on the raw digits as well (``digits_task(centred=False)``).
    """
    d = digits_splits(n_train=n_train, n_valid=0, seed=seed)
    keep = d.train.inputs.std(axis=0) > 0
    mean = d.train.inputs.mean(axis=0)
    return Splits(*(Dataset((part.inputs - mean)[:, keep], part.labels)
                    for part in (d.train, d.valid, d.test)))


def digits_task(hidden=(50, 50, 50), *, T=50, batch=100, n_train=1200, centred=True, **adam):
    """The digits version of the paper's setting: an MLP inputs-hidden-10 (tanh) on
    ``centered_digits(n_train)`` (or, with ``centred=False``, the raw 64 pixels of the
    same split), the remaining digits as a test set (only watched)."""
    data = centered_digits(n_train) if centred else digits_splits(n_train=n_train, n_valid=0)
    model = MLP([data.train.inputs.shape[1], *hidden, 10])
    return AdamScheduleTask(data, model, T, batch, **adam)
