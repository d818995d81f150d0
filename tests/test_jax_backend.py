"""backend="jax": losses in jax.numpy give the autograd path's answers, with every guarantee."""
import numpy as np
import pytest

import revlearn as rl

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from revlearn.jax_backend import mlp_loss, momentum_hypergrad_reference  # noqa: E402


def _problem(seed=0, T=20, sizes=(12, 7, 3), N=60, B=10):
    rng = np.random.default_rng(seed)
    net = rl.MLP(list(sizes))
    X, Y = rng.standard_normal((N, sizes[0])), np.eye(sizes[-1])[rng.integers(0, sizes[-1], N)]
    table = np.stack([rl.batch_indices(N, B, t, seed) for t in range(T)])
    XJ, YJ, TJ = jnp.asarray(X), jnp.asarray(Y), jnp.asarray(table)
    jl = mlp_loss(list(sizes))

    def tl_jax(x, m, t):
        idx = TJ[t]
        return jl(x, XJ[idx], YJ[idx]) + jnp.sum(jnp.exp(m) * x ** 2)

    def tl_autograd(x, m, t):
        import autograd.numpy as anp
        idx = table[t]
        return net.loss(x, X[idx], Y[idx]) + anp.sum(anp.exp(m) * x ** 2)

    ml_jax = lambda x, m: jl(x, XJ, YJ)
    ml_autograd = lambda x, m: net.loss(x, X, Y)
    meta = np.log(0.01) + 0.3 * rng.standard_normal(net.n_params)
    return net, (tl_jax, ml_jax), (tl_autograd, ml_autograd), net.init(0.5, seed), meta, rng


@pytest.mark.parametrize("which", ["momentum", "adam"])
def test_jax_hypergradients_equal_the_autograd_path(which):
    net, (tlj, mlj), (tla, mla), x0, meta, rng = _problem()
    T, G = 20, net.n_groups
    opt = (rl.Momentum(rng.uniform(.2, .5, (T, G)), rng.uniform(.6, .95, (T, G)))
           if which == "momentum" else
           rl.Adam(rng.uniform(.01, .05, (T, G)), rng.uniform(.8, .95, (T, G)),
                   rng.uniform(.99, .999, (T, G))))
    kw = dict(meta=meta, optimizer=opt, groups=net.groups)
    j = rl.hypergrad(tlj, mlj, x0, backend="jax", **kw)
    a = rl.hypergrad(tla, mla, x0, **kw)
    assert j.exact
    np.testing.assert_allclose(j.x_final, a.x_final, rtol=1e-10, atol=1e-12)
    assert j.meta_loss == pytest.approx(a.meta_loss, rel=1e-10)
    for name, want in vars(a.d_optimizer).items():
        if name == "s_precision_bits":
            continue
        got, want = np.asarray(getattr(j.d_optimizer, name)), np.asarray(want)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    for name in ("d_x0", "d_meta"):
        want = getattr(a, name)
        np.testing.assert_allclose(getattr(j, name), want, rtol=1e-10,
                                   atol=1e-10 * np.abs(want).max())


def test_jax_checkpointing_and_float_training_agree_too():
    net, (tlj, mlj), (tla, mla), x0, meta, rng = _problem(seed=1)
    T = 20
    alphas, betas = np.full(T, 0.3), np.full(T, 0.9)
    c = rl.hypergrad_checkpointed(tlj, mlj, x0, alphas, betas, meta, backend="jax")
    u = rl.hypergrad_unrolled(tla, mla, x0, alphas, betas, meta)
    np.testing.assert_allclose(c.d_alphas, u.d_alphas, rtol=1e-10)
    f = rl.train(tlj, x0, alphas, betas, meta, backend="jax").x_final
    np.testing.assert_allclose(f, rl.train(tla, x0, alphas, betas, meta).x_final, rtol=1e-12,
                               atol=1e-14)


def test_jax_path_keeps_every_check():
    net, (tlj, mlj), _, x0, meta, rng = _problem(seed=2)
    T = 10
    a, b = np.full(T, 0.3), np.full(T, 0.9)
    with pytest.raises(TypeError, match="could not differentiate train_loss with JAX"):
        rl.hypergrad(lambda x, m, t: float(jnp.sum(x)), mlj, x0, a, b, meta, backend="jax")
    with pytest.raises(FloatingPointError, match="iteration 4"):
        rl.hypergrad(lambda x, m, t: tlj(x, m, t) * jnp.where(t == 4, jnp.nan, 1.0), mlj, x0,
                     a, b, meta, backend="jax")
    with pytest.raises(ValueError, match="backend must be one of"):
        rl.hypergrad(tlj, mlj, x0, a, b, meta, backend="torch")


@pytest.mark.parametrize("one_call", [False, True])
def test_a_jax_loss_recompiled_with_other_data_is_caught_by_the_fingerprints(one_call):
    """jax.jit freezes the numpy arrays a loss closes over when it compiles; if the loss is
    recompiled between the passes with other values, the reverse pass must notice, with
    the gradient and the product in two calls or (momentum's way) in one."""
    from revlearn import jax_backend
    from revlearn.autodiff import derivatives
    from revlearn.hypergrad import exact_reversal
    net, (tlj, mlj), _, x0, meta, rng = _problem(seed=4)
    T = 8
    shift = np.zeros(len(x0))

    def drifting(x, m, t):
        return tlj(x, m, t) + 1e-3 * jnp.dot(jnp.asarray(shift), x)
    run = rl.train_exact(drifting, x0, np.full(T, 0.3), np.full(T, 0.9), meta, backend="jax")
    shift[:] = 1.0
    jax_backend._COMPILED.clear()              # the next use compiles with the new values
    d = derivatives("jax")
    g = d.train_gradient(drifting, d.flat_meta(meta)[1])
    fused = dict(grad_hvp=d.train_grad_hvp(g), adj=run.plan.adjoint_init(np.ones(len(x0))))
    with pytest.raises(rl.ReversalError, match="different gradient at iteration 7"):
        for _ in exact_reversal(run, d.train_hvp(g), **(fused if one_call else {})):
            pass


def test_the_reference_jax_hypergradients_agree_with_revlearns():
    """momentum_hypergrad_reference (JAX's own, for the benchmark) computes the same thing."""
    net, (tlj, mlj), _, x0, meta, rng = _problem(seed=3)
    T = 15
    alphas, betas = np.full(T, 0.3), np.full(T, 0.9)
    loss = lambda x, t: tlj(x, jnp.asarray(meta), t)
    r = rl.hypergrad(tlj, mlj, x0, alphas, betas, meta, backend="jax")
    for checkpoint in (False, True):
        f = momentum_hypergrad_reference(loss, lambda x: mlj(x, None), x0, alphas,
                                         rl.rational_value(betas), checkpoint=checkpoint)
        value, (d_alphas, d_betas, d_x0) = f(jnp.asarray(alphas),
                                             jnp.asarray(rl.rational_value(betas)),
                                             jnp.asarray(x0))
        np.testing.assert_allclose(np.asarray(d_alphas), r.d_alphas, rtol=1e-8)
        np.testing.assert_allclose(np.asarray(d_x0), r.d_x0, rtol=1e-6,
                                   atol=1e-8 * np.abs(r.d_x0).max())


def test_the_jax_path_runs_numpy_blas_on_one_thread_and_restores_it():
    """OpenBLAS threads spinning beside XLA's take its cores: the JAX path limits them to
    one for the run (seen from inside the run, by a callback) and gives them back after."""
    from threadpoolctl import threadpool_info, threadpool_limits
    if not [i for i in threadpool_info() if i["user_api"] == "blas"]:
        pytest.skip("no BLAS library seen by threadpoolctl")
    net, (tlj, mlj), (tla, mla), x0, meta, rng = _problem(T=3)
    alphas, betas = np.full(3, 0.3), np.full(3, 0.9)

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    with threadpool_limits(2, user_api="blas"):
        seen = {}
        for backend, tl in (("jax", tlj), ("autograd", tla)):
            rl.hypergrad(tl, mlj if backend == "jax" else mla, x0, alphas, betas, meta,
                         backend=backend,
                         callback=lambda t, *S, b=backend: seen.setdefault(b, blas_threads()))
        assert seen == {"jax": {1}, "autograd": {2}}
        assert blas_threads() == {2}


def test_momentum_asks_jax_for_the_gradient_and_the_hvp_in_one_call(monkeypatch):
    """Momentum's cotangent is known before g_t, so each JAX reverse step is one compiled
    call; its gradient is checked against the forward pass like any other, and if it
    differs in a bit the step recomputes g_t the forward pass's way (same answer)."""
    from revlearn import jax_backend
    net, (tlj, mlj), (tla, mla), x0, meta, rng = _problem(seed=6)
    T = 12
    a, b = np.full(T, 0.3), np.full(T, 0.9)
    calls = {"fused": 0}
    real = jax_backend.train_grad_hvp

    def counting(g, flip=False):
        both = real(g)

        def wrapped(x, m, t, c):
            calls["fused"] += 1
            gval, hx, hm = both(x, m, t, c)
            if flip:                      # another program's rounding: one bit off
                gval = gval.copy()
                gval.view(np.int64)[0] ^= 1
            return gval, hx, hm
        return wrapped
    monkeypatch.setattr(jax_backend, "train_grad_hvp", counting)
    r = rl.hypergrad(tlj, mlj, x0, a, b, meta, backend="jax")
    assert calls["fused"] == T and r.exact
    want = rl.hypergrad(tla, mla, x0, a, b, meta)
    np.testing.assert_allclose(r.d_alphas, want.d_alphas, rtol=1e-10)
    np.testing.assert_allclose(r.d_meta, want.d_meta, rtol=1e-10,
                               atol=1e-10 * np.abs(want.d_meta).max())
    monkeypatch.setattr(jax_backend, "train_grad_hvp", lambda g: counting(g, flip=True))
    flipped = rl.hypergrad(tlj, mlj, x0, a, b, meta, backend="jax")
    assert flipped.exact and calls["fused"] == 2 * T
    np.testing.assert_array_equal(flipped.d_alphas, r.d_alphas)
    np.testing.assert_array_equal(flipped.d_x0, r.d_x0)
    # Adam's cotangent needs g_t: two calls per step, no fused one
    calls["fused"] = 0
    adam = rl.Adam(np.full(T, 0.01), np.full(T, 0.9), np.full(T, 0.999))
    assert rl.hypergrad(tlj, mlj, x0, optimizer=adam, meta=meta, backend="jax").exact
    assert calls["fused"] == 0


def test_jax_runs_in_threads_leave_numpys_blas_threads_alone():
    """The limit is process-wide and OpenBLAS ignores changes from other threads once the
    main thread has made one: runs in worker threads neither set nor restore it (they
    would leave numpy on one thread for good), and work."""
    import threading
    from threadpoolctl import threadpool_info, threadpool_limits
    if not [i for i in threadpool_info() if i["user_api"] == "blas"]:
        pytest.skip("no BLAS library seen by threadpoolctl")
    net, (tlj, mlj), _, x0, meta, rng = _problem(T=6)
    a, b = np.full(6, 0.3), np.full(6, 0.9)

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    with threadpool_limits(2, user_api="blas"):
        results, seen = [], []

        def run(T):
            results.append(rl.hypergrad(tlj, mlj, x0, a[:T], b[:T], meta, backend="jax",
                                        callback=lambda t, *S: seen.append(blas_threads())))
        threads = [threading.Thread(target=run, args=(T,)) for T in (6, 2, 4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(results) == 3 and all(r.exact for r in results)
        assert seen and all(s == {2} for s in seen)
        assert blas_threads() == {2}
        main = rl.hypergrad(tlj, mlj, x0, a, b, meta, backend="jax",
                            callback=lambda t, *S: seen.append(blas_threads()))
        assert seen[-1] == {1} and blas_threads() == {2}
        six = [r for r in results if r.T == 6][0]      # the same run in a worker thread
        np.testing.assert_array_equal(main.d_alphas, six.d_alphas)
