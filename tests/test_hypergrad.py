"""Exact reversal and hypergradients, against independent oracles.

Oracles: the fixed-point state before the forward pass (bit-for-bit
recovery), autograd through the unrolled float loop, and central finite
differences of plain float training with the same rational betas.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from revlearn import (BigIntBuffer, ExactArray, InfoBuffer, hypergrad, hypergrad_unrolled,
                      rational_value, to_rational, train)
from revlearn.momentum import exact_step, exact_unstep_v, exact_unstep_x

from problems import small_mlp_problem, tanh_regression

BETAS = st.one_of(st.just(1.0), st.floats(1e-4, 0.05), st.floats(0.05, 1.0))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), D=st.integers(1, 12), T=st.integers(1, 300),
       beta=BETAS, alpha=st.floats(0.0, 1.0), grouped=st.booleans(),
       Buffer=st.sampled_from([InfoBuffer, BigIntBuffer]))
def test_reversal_recovers_x0_v0_bit_for_bit(seed, D, T, beta, alpha, grouped, Buffer):
    train_loss, meta_loss, x0 = tanh_regression(D, seed)
    rng = np.random.default_rng(seed)
    v0 = 0.1 * rng.standard_normal(D)
    if grouped:
        G = 3
        groups = rng.integers(0, G, D)
        alphas = alpha * rng.uniform(0.5, 1.0, (T, G))
        betas = np.clip(beta * rng.uniform(0.8, 1.0, (T, G)), 1e-4, 1.0)
    else:
        groups, alphas, betas = None, alpha * rng.uniform(0.5, 1.0, T), np.full(T, beta)
    r = hypergrad(train_loss, meta_loss, x0, alphas, betas, v0=v0, groups=groups, buffer=Buffer)
    assert r.exact
    assert r.d_alphas.shape == alphas.shape and r.d_betas.shape == betas.shape
    assert np.isfinite(r.d_x0).all()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), T=st.integers(1, 200), beta=BETAS,
       Buffer=st.sampled_from([InfoBuffer, BigIntBuffer]))
def test_exact_steps_undo_each_other(seed, T, beta, Buffer):
    """The building blocks on their own: T steps forward, T back, same integers."""
    D = 7
    train_loss, _, x0 = tanh_regression(D, seed)
    from autograd import grad
    g = grad(train_loss)
    n, d = to_rational(beta)
    X, V = ExactArray(x0), ExactArray(np.zeros(D), buffer=Buffer(D))
    k0 = X.k.copy()
    for t in range(T):
        exact_step(X, V, g(X.val, None, t), 0.3, n, d)
    for t in reversed(range(T)):
        exact_unstep_x(X, V, 0.3)
        exact_unstep_v(V, g(X.val, None, t), n, d)
    np.testing.assert_array_equal(X.k, k0)
    np.testing.assert_array_equal(V.k, 0)
    assert V.buffer.is_empty()


@pytest.fixture(scope="module")
def mlp_case():
    model, train_loss, meta_loss, x0, meta = small_mlp_problem()
    T = 25
    rng = np.random.default_rng(1)
    alphas = rng.uniform(0.2, 0.5, (T, model.n_groups))
    betas = rng.uniform(0.6, 0.95, (T, model.n_groups))
    v0 = 0.01 * rng.standard_normal(model.n_params)
    kw = dict(v0=v0, groups=model.groups)
    exact = hypergrad(train_loss, meta_loss, x0, alphas, betas, meta, **kw)
    unrolled = hypergrad_unrolled(train_loss, meta_loss, x0, alphas, betas, meta, **kw)
    return dict(model=model, train_loss=train_loss, meta_loss=meta_loss, x0=x0, meta=meta,
                alphas=alphas, betas=betas, v0=v0, exact=exact, unrolled=unrolled)


@pytest.mark.parametrize("name", ["d_x0", "d_v0", "d_alphas", "d_betas", "d_meta"])
def test_every_hypergradient_matches_autograd_through_the_unrolled_loop(mlp_case, name):
    a, b = getattr(mlp_case["exact"], name), getattr(mlp_case["unrolled"], name)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())
    assert mlp_case["exact"].meta_loss == pytest.approx(mlp_case["unrolled"].meta_loss, rel=1e-9)


def _float_meta_loss(c, **changes):
    args = dict(x0=c["x0"], v0=c["v0"], alphas=c["alphas"],
                betas=rational_value(c["betas"]), meta=c["meta"])
    args.update(changes)
    x = train(c["train_loss"], args["x0"], args["alphas"], args["betas"], args["meta"],
              v0=args["v0"], groups=c["model"].groups).x_final
    return float(c["meta_loss"](x, args["meta"]))


@pytest.mark.parametrize("name", ["x0", "v0", "meta"])
def test_vector_hypergradients_match_finite_differences(mlp_case, name):
    c, eps = mlp_case, 1e-5
    rng = np.random.default_rng(7)
    base = c[name]
    for _ in range(3):
        u = rng.standard_normal(base.shape)
        fd = (_float_meta_loss(c, **{name: base + eps * u})
              - _float_meta_loss(c, **{name: base - eps * u})) / (2 * eps)
        ours = float(np.dot(getattr(c["exact"], "d_" + name).ravel(), u.ravel()))
        assert ours == pytest.approx(fd, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("name", ["alphas", "betas"])
def test_schedule_hypergradients_match_finite_differences_per_group(mlp_case, name):
    c, eps = mlp_case, 1e-6
    base = c["alphas"] if name == "alphas" else rational_value(c["betas"])
    for t, g in [(0, 0), (3, 1), (12, 2), (24, 3)]:
        e = np.zeros_like(base)
        e[t, g] = eps
        fd = (_float_meta_loss(c, **{name: base + e}) - _float_meta_loss(c, **{name: base - e})) / (2 * eps)
        assert getattr(c["exact"], "d_" + name)[t, g] == pytest.approx(fd, rel=1e-4, abs=1e-8)


def test_scalar_schedules_and_dict_meta():
    """1-D schedules; meta as a dict is flattened and unflattened for the user."""
    import autograd.numpy as anp
    train_loss, meta_loss, x0 = tanh_regression(5, 3)
    tl = lambda x, m, t: train_loss(x, None, t) + anp.exp(m["log_l2"]) * anp.sum(x ** 2)
    ml = lambda x, m: meta_loss(x, None) + 0.0 * m["log_l2"]
    T = 30
    meta = {"log_l2": np.array(-3.0)}
    r = hypergrad(tl, ml, x0, np.full(T, 0.4), np.full(T, 0.9), meta)
    u = hypergrad_unrolled(tl, ml, x0, np.full(T, 0.4), np.full(T, 0.9), meta)
    assert r.d_alphas.shape == (T,)
    assert set(r.d_meta) == {"log_l2"}
    assert float(r.d_meta["log_l2"]) == pytest.approx(float(u.d_meta["log_l2"]), rel=1e-6)


def test_bits_per_step_match_log2_one_over_beta():
    train_loss, meta_loss, x0 = tanh_regression(50, 0)
    T = 300
    r = hypergrad(train_loss, meta_loss, x0, np.full(T, 0.3), np.full(T, 0.9))
    n, d = to_rational(0.9)
    ideal = np.log2(d / n)
    # slope is log2(d/n) within 1%; the total may add a constant below 64 bits per parameter
    assert r.bits_per_param_per_step == pytest.approx(ideal, abs=64 / T)
    assert r.bits_per_param_per_step == pytest.approx(ideal, rel=0.05)
