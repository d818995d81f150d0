"""Small seeded training problems shared by the tests."""
import autograd.numpy as np
import numpy as onp

from revlearn import MLP, batch_indices


def tanh_regression(D, seed, n_examples=40, batch=8):
    """A nonlinear least-squares loss with minibatches that depend only on t."""
    rng = onp.random.default_rng(seed)
    A = rng.standard_normal((n_examples, D)) / onp.sqrt(D)
    y = rng.standard_normal(n_examples)

    def train_loss(x, meta, t):
        idx = batch_indices(n_examples, batch, t, seed)
        return np.mean((np.tanh(np.dot(A[idx], x)) - y[idx]) ** 2) + 0.05 * np.sum(x ** 2)

    def meta_loss(x, meta):
        return np.mean((np.tanh(np.dot(A, x)) - y) ** 2)

    return train_loss, meta_loss, rng.standard_normal(D) * 0.5


def small_mlp_problem(seed=0):
    """A 6-5-3 tanh MLP on random data, minibatches of 10, per-weight log-L2 as meta."""
    rng = onp.random.default_rng(seed)
    model = MLP([6, 5, 3])
    X = rng.standard_normal((60, 6))
    labels = rng.integers(0, 3, 60)
    Y = (labels[:, None] == onp.arange(3)).astype(float)
    Xv, Yv = X[:20] + 0.3 * rng.standard_normal((20, 6)), Y[:20]

    def train_loss(x, log_l2, t):
        idx = batch_indices(60, 10, t, seed)
        return model.loss(x, X[idx], Y[idx]) + np.sum(np.exp(log_l2) * x ** 2)

    def meta_loss(x, log_l2):
        return model.loss(x, Xv, Yv)

    x0 = model.init(0.5, seed)
    meta = onp.log(0.01) + 0.3 * rng.standard_normal(model.n_params)
    return model, train_loss, meta_loss, x0, meta
