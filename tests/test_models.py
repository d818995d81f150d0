"""Models: gradients against finite differences, groups, seeded initialization."""
import numpy as np
import numpy as onp
import pytest
from autograd import grad

from revlearn import MLP, logistic_regression


def test_group_ids_follow_layers():
    m = MLP([4, 3, 2])
    assert m.n_params == 4 * 3 + 3 + 3 * 2 + 2
    assert m.group_names == ["W1", "b1", "W2", "b2"]
    counts = np.bincount(m.groups)
    np.testing.assert_array_equal(counts, [12, 3, 6, 2])
    np.testing.assert_array_equal(m.fan_in, [4, 4, 3, 3])
    W2 = m.layer_weights(np.arange(m.n_params, dtype=float), 1)
    assert W2.shape == (3, 2) and set(W2.ravel()) == set(np.flatnonzero(m.groups == 2))


def test_init_scales_per_group_with_fixed_noise():
    m = MLP([4, 3, 2])
    x = m.init([1.0, 0.0, 2.0, 0.0], seed=5)
    np.testing.assert_array_equal(x, m.init([1.0, 0.0, 2.0, 0.0], seed=5))
    assert (x[m.groups == 1] == 0).all()
    np.testing.assert_allclose(x[m.groups == 2], 2 * m.noise(5)[m.groups == 2])


def test_log_probabilities_normalize_and_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    m = MLP([5, 4, 3])
    X, labels = rng.standard_normal((9, 5)), rng.integers(0, 3, 9)
    Y = np.eye(3)[labels]
    x = m.init(0.7, seed=1)
    np.testing.assert_allclose(np.exp(m.predict(x, X)).sum(1), 1.0)
    g = grad(m.loss)(x, X, Y)
    eps = 1e-6
    for i in rng.choice(m.n_params, 6, replace=False):
        e = np.zeros(m.n_params)
        e[i] = eps
        fd = (m.loss(x + e, X, Y) - m.loss(x - e, X, Y)) / (2 * eps)
        assert abs(g[i] - fd) < 1e-7


def test_logistic_regression_is_the_no_hidden_layer_mlp():
    m = logistic_regression(64, 10)
    assert m.n_params == 650 and m.n_groups == 2
    assert m.accuracy(np.zeros(650), np.zeros((3, 64)), np.array([0, 0, 0])) == 1.0


def test_hessian_vector_products_match_finite_differences_of_the_gradient():
    """The fast parameter split must be right to second order (the reverse pass needs it)."""
    from autograd import make_vjp
    rng = np.random.default_rng(1)
    m = MLP([5, 4, 4, 3])
    X, Y = rng.standard_normal((9, 5)), np.eye(3)[rng.integers(0, 3, 9)]
    x, dv = m.init(0.7, seed=2), rng.standard_normal(m.n_params)
    g = grad(m.loss)
    hv = make_vjp(lambda z: g(z, X, Y))(x)[0](dv)
    eps = 1e-5
    fd = (g(x + eps * dv, X, Y) - g(x - eps * dv, X, Y)) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


def _plain_loss(m, x, X, Y):
    """The same network written with autograd's generic primitives: the oracle for the
    fused ones (dense, tanh, nll) in revlearn.models."""
    import autograd.numpy as anp
    from autograd.tracer import getval
    params = m.unflatten(x)
    h = X
    for i, (W, b) in enumerate(params):
        h = anp.dot(h, W) + b
        if i < len(params) - 1:
            h = anp.tanh(h)
    h = h - np.max(getval(h), axis=1, keepdims=True)
    return -anp.sum((h - anp.log(anp.sum(anp.exp(h), axis=1, keepdims=True))) * Y) / X.shape[0]


def test_fused_layers_agree_with_plain_autograd_to_third_order():
    from autograd import make_vjp
    rng = np.random.default_rng(3)
    m = MLP([5, 4, 4, 3])
    X, Y = rng.standard_normal((7, 5)), np.eye(3)[rng.integers(0, 3, 7)]
    x, u, w = m.init(0.9, seed=4), rng.standard_normal(m.n_params), rng.standard_normal(m.n_params)
    fused, plain = (lambda z: m.loss(z, X, Y)), (lambda z: _plain_loss(m, z, X, Y))
    assert fused(x) == plain(x)                      # the same arithmetic, bit for bit
    np.testing.assert_allclose(grad(fused)(x), grad(plain)(x), rtol=1e-12, atol=1e-15)
    hvp = {name: (lambda z, f=f: make_vjp(grad(f))(z)[0](u)) for name, f in
           [("fused", fused), ("plain", plain)]}
    np.testing.assert_allclose(hvp["fused"](x), hvp["plain"](x), rtol=1e-11, atol=1e-14)
    third = {name: grad(lambda z, h=h: np.dot(h(z), w)) for name, h in hvp.items()}
    np.testing.assert_allclose(third["fused"](x), third["plain"](x), rtol=1e-10, atol=1e-13)


def test_fused_layers_differentiate_with_respect_to_inputs_and_targets_too():
    """Notebook 9 learns training images: gradients must reach the data as well."""
    from autograd import make_vjp
    rng = np.random.default_rng(5)
    m = MLP([5, 4, 3])
    X, Y = rng.standard_normal((6, 5)), rng.dirichlet(np.ones(3), 6)
    x = m.init(0.8, seed=1)
    for argnum in (1, 2):
        np.testing.assert_allclose(grad(m.loss, argnum)(x, X, Y),
                                   grad(lambda *a: _plain_loss(m, *a), argnum)(x, X, Y),
                                   rtol=1e-12, atol=1e-15)
    # second order across parameters and inputs (reverse over reverse)
    gx = {name: (lambda Xs, f=f: grad(f, 0)(x, Xs, Y)) for name, f in
          [("fused", m.loss), ("plain", lambda *a: _plain_loss(m, *a))]}
    v = rng.standard_normal(m.n_params)
    np.testing.assert_allclose(make_vjp(gx["fused"])(X)[0](v), make_vjp(gx["plain"])(X)[0](v),
                               rtol=1e-11, atol=1e-14)


def test_inputs_must_be_a_batch():
    import pytest
    m = MLP([3, 2])
    with pytest.raises(ValueError, match="2-D batch"):
        m.predict(np.zeros(m.n_params), np.zeros(3))


def _old_and_new(sizes, seed=0, n=20):
    import revlearn as rl
    from revlearn.models import nll
    rng = onp.random.default_rng(seed)
    net = rl.MLP(sizes)
    X = rng.standard_normal((n, sizes[0]))
    Y = onp.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    return net, X, Y, (lambda x: nll(net.logits(x, X), Y)), (lambda x: net.loss(x, X, Y))


@pytest.mark.parametrize("sizes", [[6, 5, 3], [64, 50, 10], [784, 50, 50, 50, 10], [64, 10]])
def test_the_fused_loss_and_gradient_are_bit_identical_to_the_layers(sizes):
    """Same numpy operations in the same order: training is unchanged to the last bit."""
    from autograd import grad, make_vjp
    net, X, Y, old, new = _old_and_new(sizes)
    x = net.init(0.3, 1)
    assert old(x) == new(x)
    onp.testing.assert_array_equal(grad(old)(x), grad(new)(x))
    onp.testing.assert_array_equal(grad(lambda x: 0.5 * old(x))(x), grad(lambda x: 0.5 * new(x))(x))
    u = onp.random.default_rng(2).standard_normal(len(x))
    h_old = make_vjp(grad(old))(x)[0](u)
    h_new = make_vjp(grad(new))(x)[0](u)
    onp.testing.assert_allclose(h_new, h_old, rtol=1e-12, atol=1e-14 * onp.abs(h_old).max())


def test_fused_third_order_and_mixed_derivatives_fall_back_correctly():
    from revlearn.models import nll
    net, X, Y, old, new = _old_and_new([5, 4, 3], seed=3)
    x = net.init(0.4, 2)
    u = onp.random.default_rng(4).standard_normal(len(x))
    third = lambda f: grad(lambda x_: onp.dot(grad(lambda z: onp.dot(grad(f)(z), u))(x_), u))(x)
    onp.testing.assert_allclose(third(new), third(old), rtol=1e-10, atol=1e-12)
    # d/d inputs of the gradient direction, as the training-data experiment needs
    mixed = lambda lossf: grad(lambda X_: onp.dot(grad(lambda x_: lossf(x_, X_))(x), u))(X)
    onp.testing.assert_allclose(mixed(lambda x_, X_: net.loss(x_, X_, Y)),
                                mixed(lambda x_, X_: nll(net.logits(x_, X_), Y)),
                                rtol=1e-10, atol=1e-12)


def test_fused_loss_never_reuses_a_stale_forward_pass():
    net, X, Y, old, new = _old_and_new([6, 5, 3])
    x = net.init(0.3, 1)
    first = new(x)
    x[0] += 1.0                       # the same array object, changed in place
    assert new(x) == old(x) != first
