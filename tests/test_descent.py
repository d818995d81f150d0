"""Gradient descent on the toy's schedules: exact meta-gradients against finite differences,
trajectories against plain float training, and the meta-iteration browser."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import revlearn as rl  # noqa: E402
from revlearn.descent import (descend_schedules, float_meta_loss, schedule_objective,  # noqa: E402
                              schedule_params, schedules_from)
from revlearn.toy import toy_problem  # noqa: E402
from revlearn.widgets.descent import descent_browser, draw_meta_iteration  # noqa: E402


@pytest.fixture(scope="module")
def run():
    return descend_schedules(toy_problem(T=30, alpha=0.1), n_iters=6, step_size=0.5,
                             progress=False)


def _wiggly_params(T=30):
    """Schedules that vary with t, with every beta exactly a fraction n/65536 (so float
    training with those betas as given is the dynamics the exact run differentiates)."""
    t = np.arange(T)
    betas = rl.rational_value(0.85 + 0.05 * np.sin(t / 3))
    return schedule_params(0.12 + 0.03 * np.cos(t / 4), betas)


def test_schedules_round_trip():
    p = _wiggly_params()
    alphas, betas = schedules_from(p)
    np.testing.assert_allclose(alphas, 0.12 + 0.03 * np.cos(np.arange(30) / 4), rtol=1e-15)
    np.testing.assert_array_equal(rl.rational_value(betas),
                                  rl.rational_value(0.85 + 0.05 * np.sin(np.arange(30) / 3)))
    with pytest.raises(ValueError, match="positive step sizes"):
        schedule_params([0.1, -0.1], [0.9, 0.9])


@pytest.mark.parametrize("key, t", [("log_alphas", 0), ("log_alphas", 7), ("log_alphas", 29),
                                    ("logit_betas", 0), ("logit_betas", 12),
                                    ("logit_betas", 28)])
def test_meta_gradient_matches_central_differences(key, t):
    problem = toy_problem(T=30)
    params = _wiggly_params()
    value, grad, res = schedule_objective(problem, params)
    assert res.exact
    h = 1e-5

    def f(delta):
        p = {k: v.copy() for k, v in params.items()}
        p[key][t] += delta
        return float_meta_loss(problem, p, denominator_bits=None)   # decays as given: no rounding
    fd = (f(h) - f(-h)) / (2 * h)
    assert grad[key][t] == pytest.approx(fd, rel=1e-7, abs=1e-10)
    assert value == pytest.approx(float_meta_loss(problem, params), rel=1e-10)


def test_meta_loss_falls_and_trajectories_are_float_training(run):
    assert len(run) == 6 and len(run.trajectories) == 6
    assert np.all(np.diff(run.meta_loss) < 0)
    for i in (0, 5):
        xs = []
        rl.train(run.problem.train_loss, run.problem.x0, run.alphas(i), run.betas(i),
                 callback=lambda t, x, v: xs.append(x))
        np.testing.assert_allclose(run.trajectories[i][1:], xs, atol=1e-9)
        np.testing.assert_array_equal(run.trajectories[i][0], run.problem.x0)
        assert run.training_losses(i)[-1] == pytest.approx(run.meta_loss[i], rel=1e-12)
    # meta-iteration 0 trains with the starting schedules, the next ones with descended ones
    np.testing.assert_allclose(run.alphas(0), 0.1)
    assert not np.allclose(run.alphas(5), 0.1)


def test_one_meta_step_is_gradient_descent(run):
    _, grad, _ = schedule_objective(run.problem, run.history.params[2])
    for k in ("log_alphas", "logit_betas"):
        np.testing.assert_allclose(run.history.params[3][k],
                                   run.history.params[2][k] - 0.5 * grad[k], rtol=1e-12)


def test_descent_refuses_a_problem_it_cannot_draw():
    p = toy_problem(T=5)
    p3 = rl.toy.ToyProblem(x0=np.zeros(3), alphas=p.alphas, betas=p.betas)
    with pytest.raises(ValueError, match="2-D"):
        descend_schedules(p3, n_iters=1, progress=False)


def test_browser_follows_the_slider(run):
    b = descent_browser(run)
    assert b.slider.value == 0 and b.slider.max == 5
    text = b.readout.value
    assert text.startswith("meta-iteration 0 of 5: meta-loss")
    b.slider.value = 4
    assert b.readout.value != text and b.readout.value.startswith("meta-iteration 4 of 5")
    red = [ln for ln in b.fig.axes[0].get_lines() if ln.get_label() == "meta-iteration 4"]
    assert len(red) == 1
    np.testing.assert_array_equal(red[0].get_xdata(), run.trajectories[4][:, 0])
    assert f"{run.meta_loss[4]:.3g}" in b.readout.value


def test_draw_refuses_a_meta_iteration_that_did_not_run(run):
    fig = matplotlib.figure.Figure()
    with pytest.raises(ValueError, match="0..5"):
        draw_meta_iteration(fig, run, 6)


def test_meta_loss_and_meta_gradient_have_an_axis_each(run):
    # different units: the meta-loss on the left axis, |meta-gradient| on its own right axis
    fig = matplotlib.figure.Figure()
    ax = draw_meta_iteration(fig, run, 3)
    loss = [ln for ln in ax["meta"].get_lines() if ln.get_label().startswith("meta-loss")]
    grad = [ln for ln in ax["meta_grad"].get_lines() if ln.get_label().startswith("|meta-grad")]
    assert len(loss) == 1 and len(grad) == 1
    np.testing.assert_array_equal(loss[0].get_ydata(), run.meta_loss)
    np.testing.assert_array_equal(grad[0].get_ydata(), run.grad_norm)
    assert ax["meta"].get_ylabel() and ax["meta_grad"].get_ylabel()
    assert ax["meta_grad"].get_shared_x_axes().joined(ax["meta_grad"], ax["meta"])
