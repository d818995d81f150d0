"""Exact reversal of Adam (issue 13), against independent oracles.

Oracles: the initial state (bit-for-bit recovery, buffers back to empty),
autograd through the unrolled float loop, central finite differences of float
training, and a hand-written PyTorch-style Adam loop for the dynamics.
"""
import sys
import threading

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import revlearn as rl
from revlearn import Adam, hypergrad, hypergrad_unrolled, rational_value, train

from problems import small_mlp_problem, tanh_regression

DECAY = st.floats(0.5, 0.999)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), D=st.integers(1, 12), T=st.integers(1, 300),
       b1=DECAY, b2=st.floats(0.9, 0.9999), alpha=st.floats(0.0, 0.1), grouped=st.booleans(),
       Buffer=st.sampled_from([rl.InfoBuffer, rl.BigIntBuffer]))
def test_adam_reversal_recovers_the_start_bit_for_bit(seed, D, T, b1, b2, alpha, grouped, Buffer):
    train_loss, meta_loss, x0 = tanh_regression(D, seed)
    rng = np.random.default_rng(seed)
    if grouped:
        G = 3
        groups = rng.integers(0, G, D)
        shape = (T, G)
    else:
        groups, shape = None, (T,)
    opt = Adam(alpha * rng.uniform(0.5, 1.0, shape), np.clip(b1 * rng.uniform(0.9, 1, shape), .1, .999),
               np.clip(b2 * rng.uniform(0.99, 1, shape), .1, .9999), eps=10.0 ** rng.uniform(-8, -3))
    r = hypergrad(train_loss, meta_loss, x0, optimizer=opt, groups=groups, buffer=Buffer)
    assert r.exact
    for name in ("alphas", "beta1s", "beta2s"):
        assert getattr(r.d_optimizer, name).shape == shape
    assert np.isfinite(r.d_x0).all() and np.isfinite(r.d_optimizer.eps)


@pytest.fixture(scope="module")
def adam_case():
    model, train_loss, meta_loss, x0, meta = small_mlp_problem()
    T = 25
    rng = np.random.default_rng(1)
    G = model.n_groups
    opt = Adam(rng.uniform(0.01, 0.05, (T, G)), rng.uniform(0.8, 0.95, (T, G)),
               rng.uniform(0.99, 0.999, (T, G)), eps=1e-6)
    kw = dict(optimizer=opt, groups=model.groups)
    return dict(model=model, train_loss=train_loss, meta_loss=meta_loss, x0=x0, meta=meta,
                opt=opt, exact=hypergrad(train_loss, meta_loss, x0, meta=meta, **kw),
                unrolled=hypergrad_unrolled(train_loss, meta_loss, x0, meta=meta, **kw))


@pytest.mark.parametrize("name", ["alphas", "beta1s", "beta2s", "eps", "d_x0", "d_meta"])
def test_every_adam_hypergradient_matches_autograd_through_the_unrolled_loop(adam_case, name):
    get = (lambda r: getattr(r, name)) if name.startswith("d_") else \
        (lambda r: getattr(r.d_optimizer, name))
    a, b = np.asarray(get(adam_case["exact"])), np.asarray(get(adam_case["unrolled"]))
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())
    assert adam_case["exact"].meta_loss == pytest.approx(adam_case["unrolled"].meta_loss, rel=1e-9)


def _float_meta_loss(c, x0=None, meta=None, **changes):
    o = c["opt"]
    fields = dict(alphas=o.alphas, beta1s=rational_value(o.beta1s),
                  beta2s=rational_value(o.beta2s), eps=o.eps)
    fields.update(changes)
    meta = c["meta"] if meta is None else meta
    x = train(c["train_loss"], c["x0"] if x0 is None else x0, meta=meta, optimizer=Adam(**fields),
              groups=c["model"].groups).x_final
    return float(c["meta_loss"](x, meta))


@pytest.mark.parametrize("name", ["x0", "meta"])
def test_adam_vector_hypergradients_match_finite_differences(adam_case, name):
    c, eps = adam_case, 1e-6
    rng = np.random.default_rng(7)
    base = c[name]
    for _ in range(3):
        u = rng.standard_normal(base.shape)
        fd = (_float_meta_loss(c, **{name: base + eps * u})
              - _float_meta_loss(c, **{name: base - eps * u})) / (2 * eps)
        ours = float(np.dot(getattr(c["exact"], "d_" + name).ravel(), u.ravel()))
        assert ours == pytest.approx(fd, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("name", ["alphas", "beta1s", "beta2s", "eps"])
def test_adam_schedule_hypergradients_match_finite_differences(adam_case, name):
    c = adam_case
    o = c["opt"]
    base = {"alphas": o.alphas, "beta1s": rational_value(o.beta1s),
            "beta2s": rational_value(o.beta2s), "eps": o.eps}[name]
    got = getattr(c["exact"].d_optimizer, name)
    if name == "eps":
        h = 1e-9
        fd = (_float_meta_loss(c, eps=o.eps + h) - _float_meta_loss(c, eps=o.eps - h)) / (2 * h)
        assert got == pytest.approx(fd, rel=1e-4)
        return
    for t, g in [(0, 0), (3, 1), (12, 2), (24, 3)]:
        h = 1e-7
        e = np.zeros_like(base)
        e[t, g] = h
        fd = (_float_meta_loss(c, **{name: base + e}) - _float_meta_loss(c, **{name: base - e})) / (2 * h)
        assert got[t, g] == pytest.approx(fd, rel=1e-4, abs=1e-8)


def test_float_adam_is_pytorchs_adam():
    """train(optimizer=Adam) against a hand-written torch.optim.Adam loop (constant values)."""
    train_loss, _, x0 = tanh_regression(6, 4)
    from autograd import grad
    g = grad(train_loss)
    lr, b1, b2, eps, T = 0.01, 0.9, 0.999, 1e-8, 40
    x, m, v = x0.copy(), np.zeros_like(x0), np.zeros_like(x0)
    for t in range(1, T + 1):           # torch.optim.Adam's step, as documented
        gt = g(x, None, t - 1)
        m = b1 * m + (1 - b1) * gt
        v = b2 * v + (1 - b2) * gt * gt
        x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    ours = train(train_loss, x0, optimizer=Adam(np.full(T, lr), np.full(T, b1), np.full(T, b2),
                                                eps)).x_final
    np.testing.assert_allclose(ours, x, rtol=1e-12, atol=1e-14)


def test_exact_adam_follows_float_adam_closely():
    _, train_loss, meta_loss, x0, meta = small_mlp_problem()
    T = 30
    opt = Adam(np.full(T, 0.02), np.full(T, 0.9), np.full(T, 0.999))
    exact = rl.train_exact(train_loss, x0, meta=meta, optimizer=opt).x_final
    floats = train(train_loss, x0, meta=meta, optimizer=Adam(
        np.full(T, 0.02), rational_value(np.full(T, 0.9)), rational_value(np.full(T, 0.999)))).x_final
    assert np.max(np.abs(exact - floats)) < 1e-10


@pytest.mark.parametrize("b1, b2", [(0.9, 0.999), (0.5, 0.99), (0.98, 0.9)])
def test_adam_buffer_grows_by_both_decays(b1, b2):
    train_loss, meta_loss, x0 = tanh_regression(50, 0)
    T = 300
    r = hypergrad(train_loss, meta_loss, x0, optimizer=Adam(np.full(T, 0.01), np.full(T, b1),
                                                            np.full(T, b2)))
    (n1, d), (n2, _) = rl.to_rational(b1), rl.to_rational(b2)
    ideal = np.log2(d / n1) + np.log2(d / n2)
    per_step = r.bits_per_param_per_step
    assert per_step == pytest.approx(ideal, abs=2 * 64 / T)     # a constant below 64 bits each
    slope = (hypergrad(train_loss, meta_loss, x0, optimizer=Adam(
        np.full(2 * T, 0.01), np.full(2 * T, b1), np.full(2 * T, b2))).buffer_bits - r.buffer_bits) \
        / (len(x0) * T)
    assert slope == pytest.approx(ideal, rel=0.01)


@pytest.mark.parametrize("kw, match", [
    (dict(beta1s=np.full(5, 0.0)), r"lie in \(0, 1\]"),
    (dict(beta2s=np.full(5, 1.5)), r"lie in \(0, 1\]"),
    (dict(beta1s=np.full(5, 1.0)), "below 1 for Adam"),
    (dict(beta2s=np.full(5, 1 - 1e-7)), "below 1 for Adam"),
    (dict(eps=0.0), "eps must be a positive number"),
    (dict(eps=-1e-8), "eps must be a positive number"),
    (dict(alphas=np.full(5, -0.1)), "step sizes must be >= 0"),
    (dict(beta2s=np.full(6, 0.999)), "same shape"),
    (dict(s_precision_bits=12), "s_precision_bits"),
])
def test_bad_adam_hyperparameters_are_rejected(kw, match):
    train_loss, meta_loss, x0 = tanh_regression(3, 0)
    fields = dict(alphas=np.full(5, 0.01), beta1s=np.full(5, 0.9), beta2s=np.full(5, 0.999))
    fields.update(kw)
    with pytest.raises(ValueError, match=match):
        hypergrad(train_loss, meta_loss, x0, optimizer=Adam(**fields))


def test_adam_has_no_v0_and_no_momentum_names():
    train_loss, meta_loss, x0 = tanh_regression(3, 0)
    opt = Adam(np.full(5, 0.01), np.full(5, 0.9), np.full(5, 0.999))
    with pytest.raises(ValueError, match="no initial state v"):
        hypergrad(train_loss, meta_loss, x0, optimizer=opt, v0=np.zeros(3))
    r = hypergrad(train_loss, meta_loss, x0, optimizer=opt)
    with pytest.raises(AttributeError, match="d_optimizer"):
        r.d_betas
    assert r.d_alphas is r.d_optimizer.alphas


def test_adam_detects_a_changing_gradient_and_names_nan():
    train_loss, meta_loss, x0 = tanh_regression(4, 0)
    opt = Adam(np.full(10, 0.01), np.full(10, 0.9), np.full(10, 0.999))
    rng = np.random.default_rng(0)
    with pytest.raises(rl.ReversalError, match="different gradient"):
        hypergrad(lambda x, m, t: train_loss(x, m, t) + 1e-3 * anp.dot(rng.standard_normal(4), x),
                  meta_loss, x0, optimizer=opt)
    with pytest.raises(FloatingPointError, match="iteration 6"):
        hypergrad(lambda x, m, t: train_loss(x, m, t) * (anp.nan if t == 6 else 1.0),
                  meta_loss, x0, optimizer=opt)


def test_second_moments_that_grow_or_shrink_by_decades_keep_their_precision():
    """A gradient of 1e-4 that jumps to 1e3 (s grows by 1e14) and back: s's grid follows
    (coarser, the dropped bits in the buffer; finer again, losslessly); float Adam is
    matched and the reversal is exact."""
    def tl(x, m, t):
        scale = 1e-4 if t < 3 else (1e3 if t < 10 else 1e-3)
        return scale * anp.sum(x + 0.1 * x ** 2)
    T = 40
    opt = Adam(np.full(T, 0.01), np.full(T, 0.9), np.full(T, 0.999))
    x0 = np.linspace(-1, 1, 7)
    r = hypergrad(tl, lambda x, m: anp.sum(x ** 2), x0, optimizer=opt)
    assert r.exact
    floats = train(tl, x0, optimizer=Adam(np.full(T, 0.01), rational_value(np.full(T, 0.9)),
                                          rational_value(np.full(T, 0.999)))).x_final
    np.testing.assert_allclose(r.x_final, floats, rtol=0, atol=1e-11)


def test_adam_on_digits_with_blank_pixels_matches_float_adam():
    """Weights on always-blank pixels have a gradient of exactly 0 (s stays 0 for ever);
    others start with tiny gradients: the exact run must still be float Adam's, and the
    unrolled oracle must not turn 0 * inf into NaN."""
    data = rl.digits_splits(300, 100, seed=0)
    net = rl.MLP([64, 20, 10])
    tl = lambda x, m, t: net.loss(x, *data.train.batch(t, 50, seed=0))
    ml = lambda x, m: net.loss(x, data.valid.inputs, data.valid.targets)
    x0 = net.init(1 / np.sqrt(net.fan_in), 0)
    T = 30
    opt = Adam(np.full(T, np.exp(-4)), np.full(T, 0.9), np.full(T, 0.999))
    exact = rl.train_exact(tl, x0, optimizer=opt).x_final
    floats = train(tl, x0, optimizer=Adam(np.full(T, np.exp(-4)), rational_value(np.full(T, 0.9)),
                                          rational_value(np.full(T, 0.999)))).x_final
    np.testing.assert_allclose(exact, floats, rtol=0, atol=1e-9)
    r = hypergrad(tl, ml, x0, optimizer=opt)
    u = hypergrad_unrolled(tl, ml, x0, optimizer=opt)
    for name in ("alphas", "beta1s", "beta2s"):
        a, b = getattr(r.d_optimizer, name), getattr(u.d_optimizer, name)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())
    np.testing.assert_allclose(r.d_x0, u.d_x0, rtol=1e-6, atol=1e-6 * np.abs(u.d_x0).max())


def test_adam_in_threads_gets_the_serial_answer():
    model, train_loss, meta_loss, x0, meta = small_mlp_problem(2)
    opt = Adam(np.full(20, 0.02), np.full(20, 0.9), np.full(20, 0.999))
    want = hypergrad(train_loss, meta_loss, x0, meta=meta, optimizer=opt)
    got, errors = [], []

    def work():
        try:
            for _ in range(3):
                got.append(hypergrad(train_loss, meta_loss, x0, meta=meta, optimizer=opt))
        except Exception as e:
            errors.append(e)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        ths = [threading.Thread(target=work) for _ in range(3)]
        [th.start() for th in ths]
        [th.join() for th in ths]
    finally:
        sys.setswitchinterval(old)
    assert not errors and len(got) == 9
    for r in got:
        np.testing.assert_array_equal(r.d_meta, want.d_meta)
        np.testing.assert_array_equal(r.d_optimizer.alphas, want.d_optimizer.alphas)


@pytest.mark.parametrize("b1, b2", [(0.5, 0.999), (0.9, 0.5), (0.8, 0.99)])
def test_naive_adam_reversal_fails_after_p_over_the_larger_loss_rate(b1, b2):
    """Undoing each average divides by its beta: the faster-forgetting one sets the pace,
    so float64 reversal fails after about 53 / max(log2(1/beta1), log2(1/beta2)) steps."""
    train_loss, _, x0 = tanh_regression(20, 0)
    T = 600
    r = rl.reverse_naive(train_loss, x0, optimizer=Adam(np.full(T, 0.01), np.full(T, b1),
                                                        np.full(T, b2)), precision="float64")
    predicted = 53 / max(np.log2(1 / b1), np.log2(1 / b2))
    assert r.steps_to_failure() == pytest.approx(predicted, rel=0.3)


def test_naive_adam_refuses_mpmath_and_its_hypergradient_is_fine_while_short():
    from revlearn.naive_hypergrad import naive_hypergrad
    train_loss, meta_loss, x0 = tanh_regression(5, 2)
    opt = Adam(np.full(15, 0.01), np.full(15, 0.9), np.full(15, 0.999))
    with pytest.raises(ValueError, match="momentum SGD only"):
        rl.reverse_naive(train_loss, x0, optimizer=opt, precision=40)
    naive = naive_hypergrad(train_loss, meta_loss, x0, optimizer=opt, dtype="float64")
    exact = hypergrad(train_loss, meta_loss, x0, optimizer=opt)
    np.testing.assert_allclose(naive.d_optimizer.alphas, exact.d_optimizer.alphas, rtol=1e-6)
