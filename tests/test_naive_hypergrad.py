"""naive_hypergrad: right when the naive reversal happens to be accurate, wrong when it is not."""
import autograd.numpy as anp
import numpy as np
import pytest

import revlearn as rl
from revlearn.naive_hypergrad import naive_hypergrad
from revlearn.rational import rational_value
from revlearn.toy import toy_problem


def rel_err(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def small_net():
    net = rl.MLP([5, 4, 3])
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((20, 5))
    targets = np.eye(3)[rng.integers(0, 3, 20)]

    def train_loss(x, meta, t):
        idx = rl.batch_indices(20, 10, t, seed=1)
        return net.loss(x, inputs[idx], targets[idx]) + anp.exp(meta) * anp.sum(x ** 2)

    def meta_loss(x, meta):
        return net.loss(x, inputs, targets)
    return net, train_loss, meta_loss


def test_float64_few_steps_matches_exact_hypergradient():
    p = toy_problem(T=12)
    ex = rl.hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas)
    nv = naive_hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas, dtype="float64")
    assert nv.x0_error < 1e-12
    assert nv.meta_loss == pytest.approx(ex.meta_loss, rel=1e-10)
    for a, b in [(nv.d_alphas, ex.d_alphas), (nv.d_betas, ex.d_betas), (nv.d_x0, ex.d_x0),
                 (nv.d_v0, ex.d_v0)]:
        assert rel_err(a, b) < 1e-8


def test_groups_and_meta_match_exact_at_float64():
    net, train_loss, meta_loss = small_net()
    x0 = net.init(0.3, seed=2)
    T = 8
    alphas = np.full((T, net.n_groups), 0.2)
    betas = np.tile([0.8, 0.7, 0.9, 0.6], (T, 1))   # a different decay for every group
    ex = rl.hypergrad(train_loss, meta_loss, x0, alphas, betas, np.array(-3.0), groups=net.groups)
    nv = naive_hypergrad(train_loss, meta_loss, x0, alphas, betas, np.array(-3.0),
                         groups=net.groups, dtype=np.float64)
    assert nv.d_alphas.shape == (T, net.n_groups)
    assert rel_err(nv.d_alphas, ex.d_alphas) < 1e-7
    assert rel_err(nv.d_betas, ex.d_betas) < 1e-7
    assert float(nv.d_meta) == pytest.approx(float(ex.d_meta), rel=1e-7)


def test_forward_pass_is_plain_momentum_sgd_with_the_rational_betas():
    p = toy_problem(T=30)
    nv = naive_hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas, dtype="float64")
    xs = []
    rl.train(p.train_loss, p.x0, p.alphas, rational_value(p.betas),
             callback=lambda t, x, v: xs.append(x))
    np.testing.assert_allclose(nv.x_forward[1:], np.array(xs), rtol=0, atol=1e-13)


def test_many_steps_at_low_precision_is_far_off():
    p = toy_problem(T=50)
    ex = rl.hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas)
    nv = naive_hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas, dtype="float16")
    assert nv.x0_error > 0.1
    assert not rel_err(nv.d_alphas, ex.d_alphas) < 0.3   # (NaN counts as far off too)


def test_error_grows_as_precision_drops():
    p = toy_problem(T=50)
    ex = rl.hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas)
    errs = [rel_err(naive_hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas,
                                    dtype=dt).d_alphas, ex.d_alphas)
            for dt in ("float64", "float32", "float16")]
    assert errs[0] < 1e-8 < errs[1] < 1e-2 < errs[2]


@pytest.mark.parametrize("dtype", ["float8", "int32", np.int64, 32, None])
def test_unknown_dtype_is_refused(dtype):
    p = toy_problem(T=3)
    with pytest.raises(ValueError, match="dtype"):
        naive_hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas, dtype=dtype)
