"""Parameterizations that keep hyperparameters valid while a meta-optimizer moves them.

Gradient descent on hyperparameters may push a step size below zero or a
momentum decay above one.  So we optimize unconstrained numbers instead and map
them to valid hyperparameters with smooth functions, written in
``autograd.numpy`` so the chain rule is automatic:

    alpha  = exp(log_alpha)                 (> 0)
    beta   = max_beta * sigmoid(logit_beta) (in (0, max_beta))
    x0     = exp(log_scale)[group] * noise  (one scale per layer group)
    lambda = exp(log_lambda)                (per-weight L2 penalty, > 0)

``hypergrad_through`` glues a parameterization to ``revlearn.hypergrad``: the
exact reverse pass gives the gradient with respect to x0, alphas, betas and
meta, and autograd pulls it back to your unconstrained parameters.
"""
import warnings

import autograd.numpy as np
import numpy as onp
from autograd import make_vjp, value_and_grad
from autograd.builtins import type as ag_type
from autograd.tracer import getval

from .autodiff import LOCK, locked_flatten
from .hypergrad import hypergrad

DEFAULT_MAX_BETA = 1 - 2.0 ** -16


def exp_alphas(log_alphas):
    """Step sizes alpha = exp(log_alpha): any real log_alpha gives a positive step size."""
    return np.exp(log_alphas)


def sigmoid_betas(logit_betas, max_beta=DEFAULT_MAX_BETA):
    """Momentum decays beta = max_beta * sigmoid(logit_beta), always in (0, max_beta).

    The default ``max_beta = 1 - 2**-16`` keeps beta below 1 even after rounding
    to the fraction n/d (d = 2**16) that exact training uses.  The sigmoid is
    written as (1 + tanh(z/2)) / 2, which never overflows; only for logits
    below about -37 does it round to exactly 0, which ``hypergrad`` rejects
    with a clear error.  Note that the hypergradient is taken with respect to
    the rounded beta n/d and passed through the rounding unchanged (the rounding
    moves beta by at most 2**-17).
    """
    if not (0 < max_beta <= 1):
        raise ValueError(f"max_beta must lie in (0, 1], got {max_beta!r}")
    return max_beta * 0.5 * (1 + np.tanh(0.5 * logit_betas))


def logit(p, max_beta=DEFAULT_MAX_BETA):
    """Inverse of ``sigmoid_betas``: the logit that gives momentum decay ``p``."""
    q = onp.asarray(p, dtype=float) / max_beta
    if ((q <= 0) | (q >= 1)).any():
        raise ValueError(f"beta must lie in (0, max_beta={max_beta}) to have a logit, got {p!r}")
    return onp.log(q) - onp.log1p(-q)


def init_from_log_scales(model, log_scales, seed=0):
    """Initial weights x0 = exp(log_scales)[group] * model.noise(seed).

    One log scale per parameter group of ``model`` (e.g. an ``MLP``: W1, b1,
    W2, ...).  The noise is fixed by ``seed``, so x0 is a smooth function of
    the scales and the hypergradient d meta-loss / d log_scale exists.
    """
    if onp.shape(log_scales) != (model.n_groups,):
        raise ValueError(f"log_scales must have shape ({model.n_groups},), one per group "
                         f"{getattr(model, 'group_names', '')}, got {onp.shape(log_scales)}")
    return np.exp(log_scales)[model.groups] * model.noise(seed)


def l2_from_log(log_l2):
    """Per-weight L2 penalties lambda = exp(log_lambda): always positive."""
    return np.exp(log_l2)


def per_group(schedule_T_by_G, groups):
    """Expand a T x G schedule to T x P: column p is the schedule of parameter p's group."""
    return schedule_T_by_G[:, onp.asarray(groups, dtype=onp.intp)]


_KEYS = ("x0", "alphas", "betas", "meta")


def _flat(value):
    # Like autograd.misc.flatten's helper: one vector from any nesting of
    # tuples/lists/dicts of arrays, differentiable, dict keys in sorted order.
    t = ag_type(value)
    if t in (list, tuple):
        parts = [_flat(v) for v in value]
    elif t is dict:
        parts = [_flat(value[k]) for k in sorted(value)]
    else:
        return np.ravel(value)
    return np.concatenate(parts) if parts else onp.zeros(0)


def _raw(value):
    """The same container with every autograd box replaced by its plain value."""
    if isinstance(value, (list, tuple)):
        return type(value)(_raw(v) for v in value)
    if isinstance(value, dict):
        return {k: _raw(v) for k, v in value.items()}
    return onp.asarray(getval(value), dtype=onp.float64)


def _check_built(out):
    if not isinstance(out, dict) or set(out) != set(_KEYS):
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise ValueError(f"build(params) must return a dict with exactly the keys "
                         f"{list(_KEYS)} ('meta' may be None), got {got}")


def hypergrad_through(build, params, train_loss, meta_loss, *, extra_loss=None, groups=None,
                      v0=None, **hypergrad_kwargs):
    """Meta-loss and its exact gradient with respect to unconstrained ``params``.

    ``build(params)`` (written with autograd.numpy) turns your parameters into
    the training hyperparameters: a dict with keys 'x0', 'alphas', 'betas' and
    'meta' (None if the losses need none).  We run ``revlearn.hypergrad`` on
    the built values, pull its gradients (d_x0, d_alphas, d_betas, d_meta) back
    through ``build`` with autograd's vector-Jacobian product, and add
    ``extra_loss(params)`` (e.g. a penalty 0.01 * ||lambda||^2) if given.
    Returns ``(value, grad_params, result)``: value = result.meta_loss +
    extra_loss, grad_params shaped like params, result the HypergradResult.
    """
    built = {}

    def flat_built(p):
        out = build(p)
        _check_built(out)
        built.update({k: (None if out[k] is None else _raw(out[k])) for k in _KEYS})
        return _flat([out[k] for k in _KEYS if out[k] is not None])

    # autograd traces on one global stack: hold revlearn's lock (as hypergrad does) so
    # that several threads may call this at once without corrupting each other's traces.
    with LOCK, warnings.catch_warnings():
        # Nothing in build depending on params is allowed (the gradient is then 0).
        warnings.filterwarnings("ignore", message="Output seems independent of input")
        vjp, _ = make_vjp(flat_built)(params)
    result = hypergrad(train_loss, meta_loss, built["x0"], built["alphas"], built["betas"],
                       built["meta"], v0=v0, groups=groups, **hypergrad_kwargs)
    pieces = [result.d_x0, result.d_alphas, result.d_betas]
    if built["meta"] is not None:
        pieces.append(result.d_meta)
    with LOCK:
        grad_params = vjp(onp.asarray(_flat(pieces), dtype=onp.float64))
    value = float(result.meta_loss)
    if extra_loss is not None:
        with LOCK, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Output seems independent of input")
            extra, extra_grad = value_and_grad(extra_loss)(params)
        value += float(extra)
        flat_g, unflatten = locked_flatten(grad_params)
        grad_params = unflatten(flat_g + locked_flatten(extra_grad)[0])
    return value, grad_params, result
