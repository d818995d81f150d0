"""revlearn.jax_comparison: the problem both sides solve, and the memory measurement."""
import numpy as np
import pytest

import revlearn as rl

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from revlearn import jax_comparison as jc  # noqa: E402
from revlearn.bench import jax_case, paper_problem  # noqa: E402
from revlearn.jax_backend import momentum_hypergrad_reference  # noqa: E402

TINY = dict(sizes=(12, 7, 3), batch=10, n_examples=60)


def test_the_jax_problem_is_the_bench_problem():
    """Same data, x0, schedules; the same minibatch at every t, wrapping around included."""
    T = 9
    tlj, mlj, x0j, aj, bj = jc.jax_problem(T, **TINY)
    tla, mla, x0, a, b = paper_problem(T, **TINY)
    np.testing.assert_array_equal(x0j, x0)
    np.testing.assert_array_equal(aj, a)
    np.testing.assert_array_equal(bj, b)
    x = x0 + 0.1 * np.random.default_rng(1).standard_normal(len(x0))
    for t in (0, 3, 5, 6, 8):                      # 60 / 10 = 6 batches: t = 6 wraps around
        assert float(tlj(jnp.asarray(x), None, t)) == pytest.approx(tla(x, None, t), rel=1e-12)
    assert float(mlj(jnp.asarray(x), None)) == pytest.approx(mla(x, None), rel=1e-12)
    assert float(tlj(jnp.asarray(x), None, 1)) != pytest.approx(tla(x, None, 0), rel=1e-6)


def test_all_sides_compute_the_same_hypergradient():
    """revlearn with the JAX loss, with the autograd loss, and JAX's own two: the comparison
    compares ways of computing one set of numbers."""
    T = 12
    tlj, mlj, x0, alphas, betas = jc.jax_problem(T, **TINY)
    tla, mla, *_ = paper_problem(T, **TINY)
    j = rl.hypergrad(tlj, mlj, x0, alphas, betas, backend="jax")
    a = rl.hypergrad(tla, mla, x0, alphas, betas)
    assert j.exact
    np.testing.assert_allclose(j.d_alphas, a.d_alphas, rtol=1e-10)
    np.testing.assert_allclose(j.d_x0, a.d_x0, rtol=1e-10, atol=1e-10 * np.abs(a.d_x0).max())
    beta_used = rl.rational_value(betas)
    for checkpoint in (False, True):
        ref = momentum_hypergrad_reference(lambda x, t: tlj(x, None, t), lambda x: mlj(x, None),
                                           x0, alphas, beta_used, checkpoint=checkpoint)
        _, (d_alphas, _, _) = ref(jnp.asarray(alphas), jnp.asarray(beta_used), jnp.asarray(x0))
        np.testing.assert_allclose(np.asarray(d_alphas), a.d_alphas, rtol=1e-8)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch must be a whole number >= 1 that divides"):
        jc.jax_problem(5, sizes=(12, 7, 3), batch=7, n_examples=60)
    with pytest.raises(ValueError, match="what must be one of"):
        jax_case("checkpoint", 5, **TINY)          # a typo must not run another case
    with pytest.raises(ValueError, match="case must be one of"):
        jc.in_fresh_process("unroled", 5, **TINY)
    with pytest.raises(ValueError, match="cases must be among"):
        jc.compare((5, 10), ("revlearn", "imports"), **TINY)
    with pytest.raises(ValueError, match="Ts must be increasing"):
        jc.compare((10, 5), **TINY)
    with pytest.raises(ValueError, match="repeats must be"):
        jc.compare((5,), repeats=0, **TINY)


def test_a_failing_fresh_process_says_why():
    with pytest.raises(RuntimeError, match="(?s)'revlearn' at T = 5.*batch must be"):
        jc.in_fresh_process("revlearn", 5, sizes=(12, 7, 3), batch=7, n_examples=60)


def test_resident_rise_sees_xla_buffers():
    f = jax.jit(lambda x: x * 2.0)
    x = jnp.ones(5_000_000)                         # 40 MB; the output is another 40 MB
    f(x).block_until_ready()
    rise = jc.resident_rise(lambda: f(x).block_until_ready())
    if rise is None:
        pytest.skip("resident_rise needs Linux with glibc")
    assert 30e6 < rise < 60e6
    small = x[:10]
    f(small).block_until_ready()          # compile for the new shape first: compiling takes memory
    assert jc.resident_rise(lambda: f(small).block_until_ready()) < 5e6


def test_memory_flat_for_revlearn_one_state_per_step_for_jax_checkpointed():
    """Measured in fresh processes on the 64-20-10 net: JAX's per-step checkpointing keeps
    the state (x, v) of every step, its unrolled hypergradient more, revlearn next to none."""
    c = jc.compare((5, 400), repeats=1, **jc.SMALL)
    assert c.n_params == 1510 and c.state_bytes == 24160
    assert all(c.seconds[k] > 0 and c.peak_bytes[k] > c.imports_bytes / 2 for k in c.seconds)
    if c.run_bytes["revlearn", 400] is None:
        pytest.skip("one run's memory needs Linux with glibc")
    per_step = {case: c.growth_per_step(case) / c.state_bytes for case in c.cases}
    assert 0.7 < per_step["checkpointed"] < 1.5
    assert per_step["unrolled"] > 2 * per_step["checkpointed"]
    assert c.growth("revlearn") < 0.1 * c.growth("checkpointed")
    assert c.memory("revlearn", 400) < c.memory("checkpointed", 400) < c.memory("unrolled", 400)
