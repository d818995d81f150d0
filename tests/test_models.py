"""Models: gradients against finite differences, groups, seeded initialization."""
import numpy as np
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
