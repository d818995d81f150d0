"""Tests for revlearn.chaos: the sweep, its exact hypergradients, Lyapunov exponents, roughness."""
import autograd.numpy as anp
import numpy as np
import pytest

import revlearn as rl
from revlearn import chaos


@pytest.fixture(scope="module")
def problem():
    return chaos.make_problem(layer_sizes=(64, 8, 10), n_train=120, batch_size=40)


def single_run_loss(problem, log_alpha, T):
    """Final loss of ONE network trained with plain float momentum SGD (the oracle)."""
    res = rl.train(problem.train_loss, problem.x0, np.full(T, np.exp(log_alpha)),
                   np.full(T, problem.beta), denominator_bits=16)
    return problem.final_loss(res.x_final)


def test_copies_compute_each_networks_loss(problem):
    copies = chaos.Copies(problem, 3)
    xs = [problem.net.init(s, seed=i) for i, s in enumerate([0.1, 0.5, 1.0])]
    got = copies.losses(np.concatenate(xs), problem.data.inputs, problem.targets)
    want = [problem.final_loss(x) for x in xs]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(copies.split(np.concatenate(xs))[1], xs[1])


def test_copies_with_their_own_step_sizes_train_like_single_networks(problem):
    la = np.array([1.0, 2.0])
    T = 6
    copies = chaos.Copies(problem, 2)
    alphas, betas = copies.schedules(la, T)
    assert alphas.shape == (T, 2) and np.all(alphas[:, 1] == np.exp(2.0))
    together = rl.train(copies.train_loss, copies.x0, alphas, betas, groups=copies.groups)
    for k, l in enumerate(la):
        alone = rl.train(problem.train_loss, problem.x0, np.full(T, np.exp(l)), np.full(T, 0.9))
        np.testing.assert_allclose(copies.split(together.x_final)[k], alone.x_final,
                                   rtol=1e-10, atol=1e-12)


def test_sweep_matches_finite_differences_of_train(problem):
    T = 8
    la = np.array([1.5, 2.2, 2.9])
    s = chaos.sweep(problem, la, T)
    assert s.exact and s.T == T
    h = 1e-5
    for l, loss, g in zip(la, s.loss, s.hypergrad):
        assert loss == pytest.approx(single_run_loss(problem, l, T), rel=1e-9)
        fd = (single_run_loss(problem, l + h, T) - single_run_loss(problem, l - h, T)) / (2 * h)
        assert g == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_sweep_matches_a_single_network_hypergradient(problem):
    T, l = 8, 2.4
    s = chaos.sweep(problem, [l], T)
    one = rl.hypergrad(problem.train_loss, lambda x, m: problem.final_loss(x), problem.x0,
                       np.full(T, np.exp(l)), np.full(T, problem.beta))
    # d/d log alpha = alpha * sum_t d/d alpha_t
    assert s.hypergrad[0] == pytest.approx(np.exp(l) * one.d_alphas.sum(), rel=1e-8)


def test_chunking_does_not_change_the_sweep(problem):
    la = np.linspace(1.0, 2.5, 5)
    whole = chaos.sweep(problem, la, 5, chunk=None)
    parts = chaos.sweep(problem, la, 5, chunk=2)
    np.testing.assert_allclose(parts.loss, whole.loss, rtol=1e-10)
    np.testing.assert_allclose(parts.hypergrad, whole.hypergrad, rtol=1e-8, atol=1e-12)


def test_sweep_rejects_bad_input(problem):
    with pytest.raises(ValueError, match="T must be"):
        chaos.sweep(problem, [1.0], 0)
    with pytest.raises(ValueError, match="log_alphas"):
        chaos.sweep(problem, [], 5)
    with pytest.raises(ValueError, match="log_alphas"):
        chaos.sweep(problem, [1.0, np.nan], 5)
    with pytest.raises(ValueError, match="n_train"):
        chaos.make_problem(n_train=10 ** 6)
    with pytest.raises(ValueError, match="inputs"):
        chaos.make_problem(layer_sizes=(784, 10, 10))


def quadratic(h):
    """L(x) = 0.5 sum h_i x_i^2: the training map is linear, M_i = [[1 - a(1-b)h_i, ab], [-(1-b)h_i, b]]."""
    h = np.asarray(h, dtype=float)
    return lambda x, meta, t: 0.5 * anp.sum(h * x ** 2)


def exact_exponent(h, a, b):
    """log of the spectral radius of the linear training map: the Lyapunov exponent."""
    return max(np.log(np.max(np.abs(np.linalg.eigvals(
        [[1 - a * (1 - b) * hi, a * b], [-(1 - b) * hi, b]])))) for hi in h)


@pytest.mark.parametrize("h, a", [([1.0, 50.0], 1.0),      # one unstable direction: chaos-like growth
                                  ([1.0, 10.0], 1.0),      # stable, real eigenvalues
                                  ([0.5, 30.0], 0.1)])     # stable, complex eigenvalues (|.| = sqrt(beta))
def test_lyapunov_matches_the_spectral_radius_of_a_linear_map(h, a):
    b, T = 0.9, 400
    # The Hessian of a quadratic is the same everywhere: start at the minimum, so the weights
    # stay 0 while the perturbation grows (no overflow even in the unstable case).
    lyap = chaos.finite_time_lyapunov(quadratic(h), np.zeros(len(h)), np.full(T, a),
                                      np.full(T, b), denominator_bits=None, seed=1)
    assert lyap.exponent() == pytest.approx(exact_exponent(h, a, b), abs=0.01)


def test_lyapunov_blocks_are_independent():
    h = np.array([50.0, 1.0, 3.0, 0.2])   # block 0 is [50, 1], block 1 is [3, 0.2]
    T = 400
    lyap = chaos.finite_time_lyapunov(quadratic(h), np.zeros(4), np.ones(T),
                                      np.full(T, 0.9), n_blocks=2, denominator_bits=None)
    want = [exact_exponent(h[:2], 1.0, 0.9), exact_exponent(h[2:], 1.0, 0.9)]
    np.testing.assert_allclose(lyap.exponent(), want, atol=0.01)
    assert lyap.log_growth.shape == (T, 2)
    with pytest.raises(ValueError, match="n_blocks"):
        chaos.finite_time_lyapunov(quadratic(h), np.ones(4), np.ones(3), np.full(3, 0.9),
                                   n_blocks=3)
    with pytest.raises(ValueError, match="T must be"):
        lyap.exponent(T + 1)


def test_sweep_lyapunov_shape_and_prefixes(problem):
    la = np.array([1.0, 2.8])
    lyap = chaos.sweep_lyapunov(problem, la, 6)
    assert lyap.log_growth.shape == (6, 2)
    np.testing.assert_allclose(lyap.exponent(3), lyap.log_growth[:3].mean(axis=0))


def test_total_variation_and_roughness_on_known_curves():
    x = np.linspace(0, 2 * np.pi, 2001)
    # sin goes up 1, down 2, up 1 over [0, 2 pi]: total variation 4.
    assert chaos.total_variation(x, np.sin(x)) == pytest.approx(4 / (2 * np.pi), rel=1e-5)
    assert chaos.total_variation(x, 3 * x) == pytest.approx(3.0)
    assert chaos.roughness(x ** 2) == pytest.approx(1.0)
    assert chaos.roughness(np.sin(x)) == pytest.approx(2.0, rel=1e-5)
    assert chaos.roughness(np.ones(5)) == 1.0


def test_secant_agreement_tells_smooth_from_rough():
    x = np.linspace(0, 6, 301)
    smooth = chaos.Sweep(x, 1, np.sin(x), np.cos(x), True)
    assert chaos.secant_agreement(smooth) == 1.0
    rng = np.random.default_rng(0)
    rough = chaos.Sweep(x, 1, rng.standard_normal(301), rng.standard_normal(301), True)
    assert 0.35 < chaos.secant_agreement(rough) < 0.65


def test_longer_training_is_rougher_and_has_larger_hypergradients():
    # The lesson of the notebook, small enough for a unit test.
    p = chaos.make_problem(layer_sizes=(64, 10, 10), n_train=150, batch_size=50)
    la = np.linspace(2.5, 3.0, 30)
    short, long = chaos.sweep(p, la, 4), chaos.sweep(p, la, 30)
    assert chaos.roughness(long.loss) > 2 * chaos.roughness(short.loss)
    assert np.max(np.abs(long.hypergrad)) > 100 * np.max(np.abs(short.hypergrad))
    assert chaos.secant_agreement(short) > chaos.secant_agreement(long)


def test_smoothed_slopes_agree_on_a_smooth_curve():
    x = np.linspace(0, 3, 301)
    s = chaos.Sweep(x, 1, np.sin(x), np.cos(x), True)
    centres, trend, exact = chaos.smoothed_slopes(s, 11)
    assert len(centres) == 291 and centres[0] == pytest.approx(x[5])
    # Box average of sin over +-5 grid steps: exact derivative is the box average of cos.
    np.testing.assert_allclose(exact, np.convolve(np.cos(x), np.ones(11) / 11, "valid"))
    np.testing.assert_allclose(trend, exact, atol=1e-3)
    with pytest.raises(ValueError, match="n_window"):
        chaos.smoothed_slopes(s, 0)


def test_sweep_lyapunov_matches_a_single_network(problem):
    T, l = 5, 2.5
    swept = chaos.sweep_lyapunov(problem, [l], T, seed=0)
    alone = chaos.finite_time_lyapunov(problem.train_loss, problem.x0, np.full(T, np.exp(l)),
                                       np.full(T, problem.beta), seed=[0, 0])
    np.testing.assert_allclose(swept.log_growth[:, 0], alone.log_growth[:, 0], rtol=1e-9)


def test_make_problem_takes_other_data_such_as_mnist_sized_inputs():
    # The paper-scale setting uses MNIST (784 inputs); any Dataset works.
    rng = np.random.default_rng(0)
    data = rl.Dataset(rng.random((40, 784)), rng.integers(0, 10, 40))
    p = chaos.make_problem(layer_sizes=(784, 6, 10), n_train=30, batch_size=10, data=data)
    assert len(p.data) == 30 and p.net.n_params == 784 * 6 + 6 + 6 * 10 + 10
    s = chaos.sweep(p, [0.5, 1.0], 3, chunk=1)
    assert s.exact and np.isfinite(s.hypergrad).all()


# -- the paper's remedies: start from the left, stop when the meta-gradient grows ----------------
@pytest.mark.parametrize("grads, factor, expected", [
    ([0.4, 0.3, 0.2, 0.1], 2, None),             # shrinking: never stop
    ([0.4, 0.3, 0.35, 0.1], 2, None),            # a small wobble is not growth
    ([0.4, 0.1, 0.25, 0.1], 2, 2),               # 0.25 > 2 * 0.1
    ([-0.4, 0.05, -0.3], 2, 2),                  # magnitudes, not signs
    ([0.4, 0.1, 0.15], 1, 2),                    # factor 1: any growth above the minimum
    ([5.0], 2, None),
])
def test_first_growth(grads, factor, expected):
    assert chaos.first_growth(grads, factor) == expected


def test_first_growth_refuses_a_factor_below_one():
    with pytest.raises(ValueError, match="factor"):
        chaos.first_growth([1.0, 2.0], 0.5)


def test_descent_steps_down_the_exact_hypergradient(problem):
    T = 5
    r = chaos.descend_log_alpha(problem, 1.0, T, step_size=3.0, n_iters=3)
    assert len(r) == 3 and r.stopped_at is None and r.failure is None
    for i in range(3):
        h = 1e-5   # each recorded derivative is the slope of single-network training
        fd = (single_run_loss(problem, r.log_alphas[i] + h, T) -
              single_run_loss(problem, r.log_alphas[i] - h, T)) / (2 * h)
        assert r.hypergrad[i] == pytest.approx(fd, rel=1e-5, abs=1e-9)
        assert r.loss[i] == pytest.approx(single_run_loss(problem, r.log_alphas[i], T), rel=1e-9)
    np.testing.assert_allclose(r.log_alphas[1:], r.log_alphas[:-1] - 3.0 * r.hypergrad[:-1],
                               rtol=1e-15)
    assert r.best == int(np.argmin(r.loss))


def test_descent_stops_where_the_gradient_grows(problem):
    free = chaos.descend_log_alpha(problem, 1.0, 5, step_size=5.0, n_iters=5)
    stop = chaos.first_growth(free.hypergrad, 2)
    assert stop is not None, "pick settings where the gradient grows, or the test tests nothing"
    ruled = chaos.descend_log_alpha(problem, 1.0, 5, step_size=5.0, n_iters=5, stop_growth=2)
    assert ruled.stopped_at == stop and len(ruled) == stop + 1
    np.testing.assert_array_equal(ruled.log_alphas, free.log_alphas[:stop + 1])
    # without the rule the next steps land where alpha = exp(log alpha) is about 0: training
    # stands still, the loss is the untrained one, the gradient with respect to log alpha ~ 0
    assert free.log_alphas[-1] < -100 and abs(free.hypergrad[-1]) < 1e-100
    assert free.loss[-1] == pytest.approx(problem.final_loss(problem.x0), rel=1e-12)


def test_a_step_that_throws_alpha_out_of_range_ends_the_run(problem):
    r = chaos.descend_log_alpha(problem, 1.0, 10, step_size=5.0, n_iters=4)
    assert r.hypergrad[-1] > 0 or r.failure is not None
    assert r.failure is not None and "training diverged at log alpha" in r.failure
    assert len(r) == 2 and r.stopped_at is None    # it recorded what it evaluated, then ended


@pytest.mark.parametrize("kwargs, match", [(dict(n_iters=0), "n_iters"),
                                           (dict(step_size=0.0), "step_size"),
                                           (dict(step_size=float("nan")), "step_size")])
def test_descent_refuses_bad_settings(problem, kwargs, match):
    with pytest.raises(ValueError, match=match):
        chaos.descend_log_alpha(problem, 1.0, 3, **{"step_size": 1.0, "n_iters": 2, **kwargs})
