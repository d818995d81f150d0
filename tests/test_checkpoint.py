"""The checkpointed hypergradient (issue 15): same numbers, (T / every + every) memory."""
import autograd.numpy as anp
import numpy as np
import pytest

import revlearn as rl
from revlearn.checkpoint import hypergrad_checkpointed
from revlearn.memory import peak_memory

from problems import small_mlp_problem, tanh_regression


def _cases():
    model, tl, ml, x0, meta = small_mlp_problem(4)
    T, G = 20, model.n_groups
    rng = np.random.default_rng(3)
    momentum = rl.Momentum(rng.uniform(0.2, 0.5, (T, G)), rng.uniform(0.6, 0.95, (T, G)))
    adam = rl.Adam(rng.uniform(0.01, 0.05, (T, G)), rng.uniform(0.8, 0.95, (T, G)),
                   rng.uniform(0.99, 0.999, (T, G)))
    return model, tl, ml, x0, meta, {"momentum": momentum, "adam": adam}


MODEL, TL, ML, X0, META, OPTS = _cases()


def _fields(r):
    return {"d_x0": r.d_x0, "d_meta": r.d_meta, **{f"d_optimizer.{k}": np.asarray(v)
                                                    for k, v in vars(r.d_optimizer).items()
                                                    if k != "s_precision_bits"}}


@pytest.mark.parametrize("which", ["momentum", "adam"])
@pytest.mark.parametrize("every", [1, 3, 7, 20, None])
def test_checkpointed_equals_unrolled_and_exact(which, every):
    kw = dict(meta=META, optimizer=OPTS[which], groups=MODEL.groups)
    c = hypergrad_checkpointed(TL, ML, X0, every=every, **kw)
    u = rl.hypergrad_unrolled(TL, ML, X0, **kw)
    e = rl.hypergrad(TL, ML, X0, **kw)
    assert c.meta_loss == pytest.approx(u.meta_loss, rel=1e-12)
    for name, want in _fields(u).items():
        got = _fields(c)[name]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
        np.testing.assert_allclose(_fields(e)[name], want, rtol=1e-6,
                                   atol=1e-6 * np.abs(want).max())
    if which == "momentum":
        np.testing.assert_allclose(c.d_v0, u.d_v0, rtol=1e-10, atol=1e-12)


def test_checkpointed_takes_the_momentum_arguments_and_checks_them():
    tl, ml, x0 = tanh_regression(5, 1)
    T = 9
    c = hypergrad_checkpointed(tl, ml, x0, np.full(T, 0.3), np.full(T, 0.9), v0=0.1 * x0)
    u = rl.hypergrad_unrolled(tl, ml, x0, np.full(T, 0.3), np.full(T, 0.9), v0=0.1 * x0)
    np.testing.assert_allclose(c.d_betas, u.d_betas, rtol=1e-10)
    for every in (0, T + 1, 2.5):
        with pytest.raises(ValueError, match="every must be"):
            hypergrad_checkpointed(tl, ml, x0, np.full(T, 0.3), np.full(T, 0.9), every=every)
    with pytest.raises(ValueError, match=r"beta must lie in \(0, 1\]"):
        hypergrad_checkpointed(tl, ml, x0, np.full(T, 0.3), np.full(T, 1.5))


def test_a_gradient_that_changes_on_recomputation_is_detected():
    tl, ml, x0 = tanh_regression(4, 0)
    rng = np.random.default_rng(0)

    def noisy(x, m, t):
        return tl(x, m, t) + 1e-3 * anp.dot(rng.standard_normal(4), x)
    with pytest.raises(rl.ReversalError, match="recomputed"):
        hypergrad_checkpointed(noisy, ml, x0, np.full(10, 0.3), np.full(10, 0.9))


def test_peak_memory_grows_like_checkpoints_plus_segment():
    """Measured peak memory for D = 20,000 parameters and T = 64: storing every state
    (every = 1) or only the first (every = 64) costs about 65 states; every = 8 about 16."""
    D, T = 20_000, 64
    c = np.linspace(-1, 1, D)

    def tl(x, m, t):
        return 0.5 * anp.sum((x - c) ** 2)
    args = (tl, lambda x, m: anp.sum(x ** 2), np.zeros(D), np.full(T, 0.1), np.full(T, 0.9))
    peaks = {k: peak_memory(hypergrad_checkpointed, *args, every=k)[1] for k in (1, 8, 64)}
    state = 2 * 8 * D                        # x and v in float64
    assert peaks[8] < 0.5 * peaks[1] and peaks[8] < 0.5 * peaks[64]
    assert peaks[1] > 40 * state and peaks[8] < 40 * state
