"""The meta-optimization loop: gradient descent on hyperparameters.

Each meta-iteration trains a model from scratch with the current
hyperparameters, measures the meta-loss (e.g. validation loss) and its exact
hypergradient, and takes one step of Adam or plain gradient descent on the
hyperparameters.  ``meta_optimize`` does the stepping and keeps a
``MetaHistory`` of every meta-iteration for plotting; your ``objective``
(usually built with ``revlearn.parameterize.hypergrad_through``) does the rest.
"""
import copy
from dataclasses import dataclass, field

import numpy as np

from .autodiff import locked_flatten
from .progress import Progress

METHODS = ("adam", "sgd")


@dataclass
class MetaHistory:
    """Everything a meta-optimization run saw, one entry per meta-iteration.

    ``meta_loss[i]`` and ``info[i]`` (the dict your objective returned, e.g.
    {'valid_loss': ..., 'train_loss': ...}) were measured at ``params[i]``,
    the hyperparameters *before* update i.  ``final_params`` are the
    hyperparameters after the last update (not yet evaluated).
    """
    meta_loss: list = field(default_factory=list)
    params: list = field(default_factory=list)
    info: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    final_params: object = None
    method: str = "adam"
    step_size: float = None

    def __len__(self):
        return len(self.meta_loss)

    def info_array(self, key):
        """The values of ``info[i][key]`` across meta-iterations, as a numpy array."""
        missing = [i for i, d in enumerate(self.info) if key not in d]
        if missing:
            have = sorted(self.info[missing[0]]) if self.info else []
            raise KeyError(f"info key {key!r} is missing at meta-iteration {missing[0]}; "
                           f"the objective returned the keys {have}")
        return np.array([d[key] for d in self.info])

    def params_array(self, get=None):
        """Stack the hyperparameters (or ``get(params)`` of them) over meta-iterations."""
        get = (lambda p: p) if get is None else get
        return np.array([np.asarray(get(p)) for p in self.params])

    def gradient_growth(self, factor=10.0, window=5):
        """The first meta-iteration at which the hypergradient has grown: the paper's stopping
        rule (``first_growth`` of ``grad_norm``).  None if that never happens."""
        return first_growth(self.grad_norm, factor, window)

    def best(self, key=None):
        """Index of the meta-iteration with the lowest meta-loss (or lowest ``info[key]``)."""
        if not self.meta_loss:
            raise ValueError("the history is empty: no meta-iteration has run")
        values = np.asarray(self.meta_loss if key is None else self.info_array(key), float)
        return int(np.nanargmin(values))


def first_growth(magnitudes, factor=2.0, window=1):
    """Where "stop when the meta-gradient's magnitude starts to grow" (Maclaurin et al.
    2015) stops: the first meta-iteration i at which the mean of |magnitudes| over
    i - window + 1 .. i exceeds ``factor`` times the smallest such mean before it, or None.

    Growth is the sign that the hyperparameters reached the chaotic region, where the
    gradient no longer describes the meta-loss (notebook 05).  A factor above 1 lets small
    wobbles pass; a window above 1 averages noisy (fresh-seed) gradients first.
    """
    if not factor >= 1 or int(window) != window or window < 1:
        raise ValueError(f"factor must be >= 1 (how many times the smallest |gradient| so far "
                         f"counts as growth) and window a whole number >= 1, got "
                         f"factor={factor!r}, window={window!r}")
    window = int(window)
    g = np.abs(np.asarray(magnitudes, dtype=float))
    lowest = np.inf
    for i in range(window - 1, len(g)):
        mean = g[i - window + 1:i + 1].mean()
        if mean > factor * lowest:
            return i
        lowest = min(lowest, mean)
    return None


def _check_args(n_iters, step_size, method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} ('adam' or plain gradient "
                         f"descent 'sgd'), got {method!r}")
    if int(n_iters) != n_iters or n_iters < 1:
        raise ValueError(f"n_iters must be a whole number >= 1, got {n_iters!r}")
    if not np.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")


def _describe(value):
    if isinstance(value, dict):
        return f"a dict with keys {sorted(value, key=repr)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"an array of shape {np.shape(value)}"


def _check_structure(grad, params, i, where="grad_params"):
    """Raise unless ``grad`` has the containers, keys and shapes of ``params``.

    Comparing only the total size would apply a gradient returned under the wrong
    key, or with its arrays in another order or shape, to the wrong hyperparameters.
    Lists and tuples may stand in for each other; scalars match 0-d arrays.
    """
    def fail(what):
        raise ValueError(f"at meta-iteration {i} the objective returned a gradient that does not "
                         f"have the structure of params: {what}. Return grad_params with the "
                         "same keys, lengths and array shapes as params (e.g. from "
                         "hypergrad_through, or autograd.grad of a function of params)")
    if isinstance(params, dict):
        if not isinstance(grad, dict):
            fail(f"{where} is {_describe(grad)}, params there is {_describe(params)}")
        missing = sorted(set(params) - set(grad), key=repr)
        extra = sorted(set(grad) - set(params), key=repr)
        if missing or extra:
            fail(f"{where} is missing the keys {missing} and has the unexpected keys {extra}")
        for k in params:
            _check_structure(grad[k], params[k], i, f"{where}[{k!r}]")
    elif isinstance(params, (list, tuple)):
        if not isinstance(grad, (list, tuple)) or len(grad) != len(params):
            fail(f"{where} is {_describe(grad)}, params there is {_describe(params)}")
        for j, (g, p) in enumerate(zip(grad, params)):
            _check_structure(g, p, i, f"{where}[{j}]")
    else:
        if isinstance(grad, (dict, list, tuple)) or np.shape(grad) != np.shape(params):
            fail(f"{where} is {_describe(grad)}, params there is {_describe(params)}")


def _flat_grad(grad, size, i):
    g = np.asarray(locked_flatten(grad)[0], dtype=np.float64)
    if g.shape != (size,):
        raise ValueError(f"at meta-iteration {i} the objective returned a gradient with {g.size} "
                         f"numbers for {size} hyperparameters: grad_params must have the "
                         "structure of params")
    if not np.isfinite(g).all():
        bad = int(np.sum(~np.isfinite(g)))
        raise FloatingPointError(
            f"the hypergradient is not finite at meta-iteration {i} ({bad} NaN/inf entries). "
            "The hyperparameters reached a region where training diverges: lower step_size, "
            "start from smaller step sizes alpha, or train for fewer iterations.")
    return g


def meta_optimize(objective, params, *, n_iters, step_size, method="adam", b1=0.9, b2=0.999,
                  eps=1e-8, progress=True, callback=None):
    """Minimize ``objective`` over hyperparameters ``params`` with Adam or gradient descent.

    ``objective(params, i)`` returns ``(value, grad_params, info)``: the
    meta-loss, its gradient (same structure as ``params``, any nesting of
    arrays, tuples, lists and dicts) and a dict of numbers to record.
    ``method`` is "adam" (Kingma & Ba, with bias correction, as in the paper)
    or "sgd" (params -= step_size * gradient).  A progress bar shows the
    meta-loss; ``callback(i, params, value, info)`` runs after each
    evaluation.  Returns a ``MetaHistory``.
    """
    _check_args(n_iters, step_size, method)
    x, unflatten = locked_flatten(params)
    x = np.array(x, dtype=np.float64)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    history = MetaHistory(method=method, step_size=float(step_size))
    steps = range(int(n_iters))
    bar = None
    if progress:
        steps = bar = Progress(steps, desc=f"meta ({method})")
    for i in steps:
        current = unflatten(x.copy())
        value, grad, info = objective(current, i)
        value = float(value)
        if not np.isfinite(value):
            raise FloatingPointError(f"the meta-loss is {value} at meta-iteration {i}: training "
                                     "diverged; lower step_size or the starting step sizes")
        _check_structure(grad, current, i)
        g = _flat_grad(grad, len(x), i)
        history.meta_loss.append(value)
        history.params.append(copy.deepcopy(current))
        history.info.append(dict(info or {}))
        history.grad_norm.append(float(np.linalg.norm(g)))
        if bar is not None:
            bar.set_postfix(meta_loss=f"{value:.4g}")
        if callback is not None:
            callback(i, current, value, info)
        if method == "adam":
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g ** 2
            m_hat = m / (1 - b1 ** (i + 1))
            v_hat = v / (1 - b2 ** (i + 1))
            x = x - step_size * m_hat / (np.sqrt(v_hat) + eps)
        else:
            x = x - step_size * g
    history.final_params = unflatten(x.copy())
    return history


def adam(objective, params, *, n_iters, step_size, **kwargs):
    """``meta_optimize`` with Adam (the paper's meta-optimizer for schedules)."""
    return meta_optimize(objective, params, n_iters=n_iters, step_size=step_size,
                         method="adam", **kwargs)


def gradient_descent(objective, params, *, n_iters, step_size, **kwargs):
    """``meta_optimize`` with plain gradient descent (the paper's choice for L2 penalties)."""
    return meta_optimize(objective, params, n_iters=n_iters, step_size=step_size,
                         method="sgd", **kwargs)
