"""Learned Adam step-size schedules (revlearn.adam_schedules), against independent oracles:
autograd through the unrolled loop, central finite differences of float training, and
plain ``revlearn.train`` for the evaluation."""
import numpy as np
import pytest

import revlearn as rl
from revlearn.adam_schedules import AdamScheduleTask, digits_task, log_alpha_hypergrad
from revlearn.evaluation import Spread
from revlearn.rational import rational_value

from problems import small_mlp_problem


@pytest.fixture(scope="module")
def mlp_case():
    model, train_loss, meta_loss, x0, meta = small_mlp_problem(3)
    T, G = 12, model.n_groups
    rng = np.random.default_rng(0)
    log_alphas = np.log(0.03) + 0.3 * rng.standard_normal((T, G))
    b1, b2 = np.full((T, G), 0.9), np.full((T, G), 0.99)
    value, grad, r = log_alpha_hypergrad(train_loss, meta_loss, x0, log_alphas, b1, b2,
                                         meta=meta, groups=model.groups, eps=1e-6)
    return dict(model=model, train_loss=train_loss, meta_loss=meta_loss, x0=x0, meta=meta,
                log_alphas=log_alphas, b1=b1, b2=b2, value=value, grad=grad, r=r)


def _float_loss(c, log_alphas):
    x = rl.train(c["train_loss"], c["x0"], meta=c["meta"], groups=c["model"].groups,
                 optimizer=rl.Adam(np.exp(log_alphas), rational_value(c["b1"]),
                                   rational_value(c["b2"]), 1e-6)).x_final
    return float(c["meta_loss"](x, c["meta"]))


def test_log_alpha_gradient_is_alpha_times_the_unrolled_alpha_gradient(mlp_case):
    c = mlp_case
    u = rl.hypergrad_unrolled(c["train_loss"], c["meta_loss"], c["x0"], meta=c["meta"],
                              groups=c["model"].groups,
                              optimizer=rl.Adam(np.exp(c["log_alphas"]), c["b1"], c["b2"], 1e-6))
    assert c["grad"].shape == c["log_alphas"].shape
    np.testing.assert_allclose(c["grad"], np.exp(c["log_alphas"]) * u.d_optimizer.alphas,
                               rtol=1e-6, atol=1e-9 * np.abs(c["grad"]).max())
    assert c["value"] == pytest.approx(u.meta_loss, rel=1e-9) and c["r"].exact


def test_log_alpha_gradient_matches_finite_differences(mlp_case):
    c, h = mlp_case, 1e-5
    rng = np.random.default_rng(1)
    for _ in range(3):
        u = rng.standard_normal(c["log_alphas"].shape)
        fd = (_float_loss(c, c["log_alphas"] + h * u) - _float_loss(c, c["log_alphas"] - h * u)) / (2 * h)
        assert float(np.sum(c["grad"] * u)) == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_log_alphas_must_be_finite(mlp_case):
    c = mlp_case
    bad = c["log_alphas"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="log_alphas must be finite"):
        log_alpha_hypergrad(c["train_loss"], c["meta_loss"], c["x0"], bad, c["b1"], c["b2"],
                            meta=c["meta"], groups=c["model"].groups)


@pytest.fixture(scope="module")
def task():
    return digits_task(hidden=(8,), T=6, batch=20, n_train=200)


def test_task_objective_uses_seed_i_and_the_training_loss(task):
    p = {"log_alphas": np.full((task.T, task.G), -3.0)}
    v0, g0, info0 = task.objective(p, 0)
    v0b, g0b, _ = task.objective(p, 0)
    v1, _, _ = task.objective(p, 1)
    assert v0 == v0b and np.array_equal(g0["log_alphas"], g0b["log_alphas"])   # deterministic
    assert v0 != v1                                                         # a fresh seed
    assert g0["log_alphas"].shape == (task.T, task.G) and info0["train_loss"] == v0
    # the meta-objective is the training loss after float training with the same seed
    assert task.evaluate(np.full((task.T, task.G), np.exp(-3.0)), 0)["train loss"] == \
        pytest.approx(v0, rel=1e-9)


def test_per_group_objective_matches_finite_differences_of_per_group_constants(task):
    """The per-layer-constant baseline: one log alpha per group; its gradient against
    central differences of plain float training with those constants (``evaluate``)."""
    la = np.linspace(-3.5, -2.5, task.G)
    value, grad, info = task.per_group_objective({"log_alphas": la}, 3)
    assert grad["log_alphas"].shape == (task.G,) and info["train_loss"] == value
    assert value == pytest.approx(task.evaluate(np.exp(la), 3)["train loss"], rel=1e-9)
    h = 1e-5
    for g in (0, task.G - 1):
        e = np.zeros(task.G)
        e[g] = h
        fd = (task.evaluate(np.exp(la + e), 3)["train loss"]
              - task.evaluate(np.exp(la - e), 3)["train loss"]) / (2 * h)
        assert grad["log_alphas"][g] == pytest.approx(fd, rel=1e-5, abs=1e-10)
    with pytest.raises(ValueError, match="one per group"):
        task.per_group_objective({"log_alphas": np.zeros((task.T, task.G))}, 0)


def test_objective_refuses_a_wrong_shape(task):
    with pytest.raises(ValueError, match="log_alphas"):
        task.objective({"log_alphas": np.zeros(task.T)}, 0)


def test_evaluate_accepts_a_constant_per_group_constants_and_a_schedule(task):
    a = np.exp(-3.0)
    one = task.evaluate(a, 5)
    per_group = task.evaluate(np.full(task.G, a), 5)
    schedule = task.evaluate(np.full((task.T, task.G), a), 5)
    assert one["train loss"] == pytest.approx(per_group["train loss"], rel=1e-12)
    assert one["train loss"] == pytest.approx(schedule["train loss"], rel=1e-12)
    x = rl.train(task.train_loss(5), task.x0(5), optimizer=rl.Adam(
        np.full(task.T, a), np.full(task.T, 0.9), np.full(task.T, 0.999)),
        denominator_bits=16).x_final
    assert one["train loss"] == pytest.approx(float(task.meta_loss(x)), rel=1e-12)
    assert 0 <= one["test accuracy"] <= 1
    with pytest.raises(ValueError, match="alphas must be"):
        task.evaluate(np.ones(3), 0)


def test_grid_scores_every_constant_on_every_seed(task):
    grid = task.grid([-4.0, -2.0], range(3))
    assert set(grid) == {-4.0, -2.0}
    assert all(isinstance(s, Spread) and s.n == 3 for s in grid.values())
    assert grid[-4.0].values[1] == pytest.approx(task.evaluate(np.exp(-4.0), 1)["train loss"])


def test_a_diverged_run_scores_inf():
    class Diverging(AdamScheduleTask):
        def train_loss(self, seed):
            base = super().train_loss(seed)
            return lambda x, meta, t: base(x, meta, t) * (np.inf if t == 2 else 1.0)
    t = digits_task(hidden=(4,), T=4, batch=10, n_train=100)
    d = Diverging(t.data, t.model, t.T, t.batch)
    assert d.evaluate(0.01, 0) == {"train loss": np.inf, "test loss": np.inf,
                                   "test accuracy": 0.0}


def test_centered_digits_have_no_blank_pixels_and_a_zero_mean():
    from revlearn.adam_schedules import centered_digits
    d = centered_digits(300)
    assert len(d.train) == 300 and len(d.valid) == 0 and len(d.test) == 1797 - 300
    np.testing.assert_allclose(d.train.inputs.mean(axis=0), 0, atol=1e-12)
    assert (d.train.inputs.std(axis=0) > 0).all()
    assert d.test.inputs.shape[1] == d.train.inputs.shape[1] < 64


@pytest.mark.parametrize("centred", [True, False])
def test_exact_adam_follows_float_adam_on_the_digits(centred):
    """Raw digits were the case where a second-moment grid fixed at the first step broke
    exact Adam (weights on pixels blank in the first minibatch, or always blank); the
    moving grid must follow float Adam there as closely as on the centred digits."""
    t = digits_task(hidden=(20,), T=20, batch=50, n_train=400, centred=centred)
    assert (t.model.layer_sizes[0] < 64) == centred
    opt = rl.Adam(np.full(t.T, 0.02), np.full(t.T, 0.9), np.full(t.T, 0.999))
    exact = rl.train_exact(t.train_loss(0), t.x0(0), optimizer=opt).x_final
    floats = rl.train(t.train_loss(0), t.x0(0), optimizer=rl.Adam(
        np.full(t.T, 0.02), rational_value(np.full(t.T, 0.9)),
        rational_value(np.full(t.T, 0.999)))).x_final
    np.testing.assert_allclose(exact, floats, rtol=0, atol=1e-8)
    assert float(t.meta_loss(exact)) == pytest.approx(t.evaluate(0.02, 0)["train loss"], rel=1e-8)


def test_raw_digits_task_keeps_every_pixel_and_the_same_split():
    raw, cen = digits_task(hidden=(4,), n_train=300, centred=False), digits_task(hidden=(4,), n_train=300)
    assert raw.data.train.inputs.shape == (300, 64) and cen.data.train.inputs.shape[1] < 64
    np.testing.assert_array_equal(raw.data.train.labels, cen.data.train.labels)
    assert (raw.data.train.inputs.std(axis=0) == 0).any()      # always-blank pixels kept
