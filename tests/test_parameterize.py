"""Parameterizations and hypergradients pulled back through them.

Oracle: central finite differences of the plain float ``revlearn.train`` along
a random direction in the unconstrained parameters.  The exact run uses the
betas rounded to n/d, so the finite differences use the same rounded betas
(``rational_value``) -- or, when the betas themselves are perturbed, a base
point that lies exactly on the n/d grid and float betas around it.
"""
import autograd.numpy as np
import numpy as onp
import pytest

import revlearn as rl
from revlearn.parameterize import (exp_alphas, hypergrad_through, init_from_log_scales,
                                   l2_from_log, logit, per_group, sigmoid_betas)

T = 8
SPLITS = rl.digits_splits(n_train=40, n_valid=40, seed=1)
MODEL = rl.MLP([64, 5, 10])


def train_loss(x, meta, t):
    inputs, targets = SPLITS.train.batch(t, 20)
    return MODEL.loss(x, inputs, targets)


def l2_train_loss(x, meta, t):
    return train_loss(x, None, t) + 0.5 * np.sum(l2_from_log(meta) * x ** 2)


def meta_loss(x, meta):
    return MODEL.loss(x, SPLITS.valid.inputs, SPLITS.valid.targets)


def on_grid(betas):
    """Logits whose betas are exactly representable as n / 2**16 (up to one float ulp)."""
    return logit(rl.rational_value(betas))


def float_meta_loss(build, params, loss=train_loss, groups=None, round_betas=True):
    b = build(params)
    betas = rl.rational_value(b["betas"]) if round_betas else b["betas"]
    r = rl.train(loss, b["x0"], b["alphas"], betas, b["meta"], groups=groups)
    return meta_loss(r.x_final, b["meta"])


def directional_fd(f, params, direction, eps=1e-5):
    flat, unflatten = rl_flatten(params)
    d = rl_flatten(direction)[0]
    return (f(unflatten(flat + eps * d)) - f(unflatten(flat - eps * d))) / (2 * eps)


def rl_flatten(tree):
    # autograd's flatten traces (it is a VJP); the thread test calls this inside its threads,
    # so it takes its turn on revlearn's lock like any autograd call sharing the trace stack
    from revlearn.autodiff import locked_flatten
    return locked_flatten(tree)


def random_like(params, seed):
    flat, unflatten = rl_flatten(params)
    return unflatten(onp.random.default_rng(seed).standard_normal(flat.shape))


def dot(a, b):
    return float(onp.dot(rl_flatten(a)[0], rl_flatten(b)[0]))


# --- the maps themselves ---------------------------------------------------------

def test_exp_alphas_and_l2_are_exp():
    z = onp.array([-2.0, 0.0, 1.5])
    assert onp.allclose(exp_alphas(z), onp.exp(z))
    assert onp.allclose(l2_from_log(z), onp.exp(z))


def test_sigmoid_betas_stays_valid_and_inverts():
    z = onp.array([-30.0, -3.0, 0.0, 2.0, 40.0, 1e4])
    b = sigmoid_betas(z)
    assert ((b > 0) & (b < 1)).all()
    # even the largest beta rounds to a fraction below 1 for exact training
    assert (rl.rational_value(b) < 1).all()
    assert onp.allclose(logit(b[1:4]), z[1:4])
    assert sigmoid_betas(0.0) == pytest.approx(0.5 * (1 - 2.0 ** -16))


def test_sigmoid_betas_rejects_bad_max_beta():
    with pytest.raises(ValueError, match="max_beta"):
        sigmoid_betas(0.0, max_beta=1.5)
    with pytest.raises(ValueError, match="logit"):
        logit(1.0)


def test_init_from_log_scales_matches_model_init():
    s = onp.log(onp.array([0.1, 0.2, 0.3, 0.4]))
    assert onp.array_equal(init_from_log_scales(MODEL, s, seed=3), MODEL.init(onp.exp(s), seed=3))
    with pytest.raises(ValueError, match="one per group"):
        init_from_log_scales(MODEL, onp.zeros(3))


def test_per_group_expands_columns():
    sched = onp.arange(6.0).reshape(2, 3)
    out = per_group(sched, onp.array([2, 0, 0, 1]))
    assert onp.array_equal(out, [[2, 0, 0, 1], [5, 3, 3, 4]])


# --- hypergradients through each parameterization vs finite differences ------------

def test_log_alphas_scalar_schedule():
    params = {"log_alphas": onp.linspace(-1.5, -0.5, T)}

    def build(p):
        return dict(x0=MODEL.init(0.1), alphas=exp_alphas(p["log_alphas"]),
                    betas=onp.full(T, 0.9), meta=None)

    value, grad, res = hypergrad_through(build, params, train_loss, meta_loss)
    assert res.exact
    assert value == pytest.approx(float_meta_loss(build, params), rel=1e-9)
    u = random_like(params, 0)
    fd = directional_fd(lambda p: float_meta_loss(build, p), params, u)
    assert dot(grad, u) == pytest.approx(fd, rel=1e-5)


def test_per_group_log_alphas_logit_betas_and_log_scales():
    """The notebook-5 parameterization: T x G schedules of log alpha and logit beta."""
    G = MODEL.n_groups
    rng = onp.random.default_rng(5)
    params = {"log_alphas": -1.0 + 0.3 * rng.standard_normal((T, G)),
              "logit_betas": on_grid(rng.uniform(0.3, 0.9, (T, G))),
              "log_scales": onp.log([0.3, 0.1, 0.4, 0.1])}

    def build(p):
        return dict(x0=init_from_log_scales(MODEL, p["log_scales"], seed=2),
                    alphas=exp_alphas(p["log_alphas"]), betas=sigmoid_betas(p["logit_betas"]),
                    meta=None)

    value, grad, res = hypergrad_through(build, params, train_loss, meta_loss,
                                         groups=MODEL.groups)
    assert set(grad) == set(params) and grad["log_alphas"].shape == (T, G)
    f = lambda p: float_meta_loss(build, p, groups=MODEL.groups, round_betas=False)
    assert value == pytest.approx(f(params), rel=1e-9)
    for key, seed in (("log_alphas", 1), ("logit_betas", 2), ("log_scales", 3)):
        u = {k: onp.zeros_like(v) for k, v in params.items()}
        u[key] = onp.random.default_rng(seed).standard_normal(params[key].shape)
        fd = directional_fd(f, params, u)
        assert dot(grad, u) == pytest.approx(fd, rel=1e-4), key


def test_per_group_betas_agree_with_unrolled_autograd():
    """Betas that differ between groups: the exact reverse pass against autograd."""
    G = MODEL.n_groups
    betas = rl.rational_value(onp.tile([0.3, 0.6, 0.9, 0.95], (T, 1)))
    alphas = onp.full((T, G), 0.4)
    x0 = MODEL.init(0.2)
    a = rl.hypergrad(train_loss, meta_loss, x0, alphas, betas, groups=MODEL.groups)
    b = rl.hypergrad_unrolled(train_loss, meta_loss, x0, alphas, betas, groups=MODEL.groups)
    assert onp.allclose(a.d_x0, b.d_x0, rtol=1e-7, atol=1e-12)
    assert onp.allclose(a.d_betas, b.d_betas, rtol=1e-7, atol=1e-12)


def test_log_l2_per_weight_in_meta_with_extra_loss():
    """Per-weight log L2 inside the training loss, plus a direct penalty 0.01 ||lambda||^2."""
    params = (onp.random.default_rng(4).uniform(-4, -1, MODEL.n_params),)

    def build(p):
        return dict(x0=MODEL.init(0.1), alphas=onp.full(T, 0.5), betas=onp.full(T, 0.9),
                    meta=p[0])

    extra = lambda p: 0.01 * np.sum(l2_from_log(p[0]) ** 2)
    value, grad, res = hypergrad_through(build, params, l2_train_loss, meta_loss,
                                         extra_loss=extra)
    assert isinstance(grad, tuple) and grad[0].shape == params[0].shape
    f = lambda p: float_meta_loss(build, p, loss=l2_train_loss) + extra(p)
    assert value == pytest.approx(f(params), rel=1e-9)
    u = random_like(params, 7)
    assert dot(grad, u) == pytest.approx(directional_fd(f, params, u), rel=1e-5)


def test_meta_as_dict_and_partly_constant_build():
    """A dict meta, and parameters the build ignores get a zero gradient."""
    params = [onp.array(-2.0), onp.array([0.5, 0.5])]

    def loss(x, meta, t):
        return train_loss(x, None, t) + 0.5 * np.exp(meta["log_l2"]) * np.sum(x ** 2)

    def build(p):
        return dict(x0=MODEL.init(0.1), alphas=onp.full(T, 0.5), betas=onp.full(T, 0.8),
                    meta={"log_l2": p[0]})

    value, grad, res = hypergrad_through(build, params, loss, meta_loss)
    assert isinstance(grad, list) and onp.array_equal(grad[1], [0.0, 0.0])
    f = lambda p: float_meta_loss(build, p, loss=loss)
    fd = (f([params[0] + 1e-5, params[1]]) - f([params[0] - 1e-5, params[1]])) / 2e-5
    assert float(grad[0]) == pytest.approx(fd, rel=1e-5)
    assert float(grad[0]) == pytest.approx(float(res.d_meta["log_l2"]), rel=1e-12)


def test_build_must_return_the_four_keys():
    def build(p):
        return dict(x0=MODEL.init(0.1), alphas=exp_alphas(p), betas=onp.full(T, 0.9))

    with pytest.raises(ValueError, match="'meta'"):
        hypergrad_through(build, onp.zeros(T), train_loss, meta_loss)


def test_hypergrad_through_is_safe_from_several_threads():
    """autograd keeps one global trace stack; with forced thread switches, unlocked tracing
    in build / extra_loss corrupts gradients. Each thread must get its serial answer."""
    import sys
    import threading

    def build(p):
        return {"x0": init_from_log_scales(MODEL, p["log_scales"], seed=0),
                "alphas": exp_alphas(p["log_alpha"]) * onp.ones(T), "betas": onp.full(T, 0.8),
                "meta": l2_from_log(p["log_l2"])}

    def run(k):
        p = {"log_scales": onp.full(MODEL.n_groups, -2.0 + 0.1 * k), "log_alpha": onp.array(-1.0 + 0.2 * k),
             "log_l2": onp.full(MODEL.n_params, -6.0 + 0.5 * k)}
        value, grad, _ = hypergrad_through(build, p, l2_train_loss, meta_loss,
                                           extra_loss=lambda q: 0.01 * np.sum(l2_from_log(q["log_l2"]) ** 2))
        return value, rl_flatten(grad)[0]

    serial = [run(k) for k in range(4)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for repeat in range(5):      # a race shows up in some runs only: try several times
            out = [None] * 4
            threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, run(k))) for k in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            for (v, g), (v2, g2) in zip(serial, out):
                assert v == v2 and onp.array_equal(g, g2)
    finally:
        sys.setswitchinterval(old)
