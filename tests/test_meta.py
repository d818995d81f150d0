"""The meta-optimization loop on quadratics whose minimum and trajectory we know."""
import re

import numpy as np
import pytest

from revlearn.meta import MetaHistory, adam, gradient_descent, meta_optimize

CENTER = {"a": np.array([1.0, -2.0, 0.5]), "b": np.array(3.0)}
WEIGHT = {"a": np.array([1.0, 4.0, 0.25]), "b": np.array(2.0)}


def quadratic(params, i):
    """sum w (p - c)^2, its gradient, and an info dict."""
    value = sum(float(np.sum(WEIGHT[k] * (params[k] - CENTER[k]) ** 2)) for k in params)
    grad = {k: 2 * WEIGHT[k] * (params[k] - CENTER[k]) for k in params}
    return value, grad, {"valid_loss": value + 1.0, "i": i}


def start():
    return {"a": np.zeros(3), "b": np.array(0.0)}


def test_gradient_descent_follows_the_closed_form():
    h = meta_optimize(quadratic, start(), n_iters=20, step_size=0.05, method="sgd",
                      progress=False)
    for k in CENTER:
        expected = CENTER[k] + (1 - 2 * 0.05 * WEIGHT[k]) ** 20 * (0 - CENTER[k])
        assert np.allclose(h.final_params[k], expected, rtol=1e-12, atol=1e-14)


def test_adam_converges_to_the_minimum():
    h = adam(quadratic, start(), n_iters=600, step_size=0.05, progress=False)
    for k in CENTER:
        assert np.allclose(h.final_params[k], CENTER[k], atol=1e-3)
    assert h.meta_loss[-1] < 1e-5 < h.meta_loss[0]


def test_adam_first_step_is_step_size_times_sign():
    """With bias correction Adam's first step is -step_size * g / (|g| + eps)."""
    h = meta_optimize(quadratic, start(), n_iters=1, step_size=0.1, progress=False)
    for k in CENTER:
        assert np.allclose(h.final_params[k], 0.1 * np.sign(CENTER[k]), rtol=1e-6)


def test_history_records_every_meta_iteration_before_its_update():
    h = gradient_descent(quadratic, start(), n_iters=5, step_size=0.1, progress=False)
    assert isinstance(h, MetaHistory)
    assert len(h) == len(h.params) == len(h.info) == len(h.grad_norm) == 5
    assert np.array_equal(h.params[0]["a"], np.zeros(3))
    for i in range(5):
        assert h.meta_loss[i] == quadratic(h.params[i], i)[0]
    assert np.array_equal(h.info_array("i"), np.arange(5))
    assert np.allclose(h.info_array("valid_loss"), np.array(h.meta_loss) + 1)
    assert h.params_array(lambda p: p["a"]).shape == (5, 3)
    assert h.best() == 4 and h.best("valid_loss") == 4
    # the stored copies are independent of each other and of final_params
    assert not np.array_equal(h.params[1]["a"], h.params[2]["a"])
    h.params[0]["a"][0] = 99.0
    assert h.params[1]["a"][0] != 99.0


def test_callback_sees_each_meta_iteration():
    seen = []
    meta_optimize(quadratic, start(), n_iters=3, step_size=0.1,
                  callback=lambda i, p, v, info: seen.append((i, v)), progress=False)
    assert [i for i, _ in seen] == [0, 1, 2]


def test_progress_bar_runs():
    h = meta_optimize(quadratic, start(), n_iters=2, step_size=0.1, progress=True)
    assert len(h) == 2


def test_info_array_names_a_missing_key():
    h = meta_optimize(quadratic, start(), n_iters=2, step_size=0.1, progress=False)
    with pytest.raises(KeyError, match="'test_loss'.*meta-iteration 0"):
        h.info_array("test_loss")
    with pytest.raises(ValueError, match="empty"):
        MetaHistory().best()


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="lbfgs"), "method"),
    (dict(n_iters=0), "n_iters"),
    (dict(n_iters=2.5), "n_iters"),
    (dict(step_size=0.0), "step_size"),
    (dict(step_size=-0.1), "step_size"),
    (dict(step_size=float("nan")), "step_size"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    args = dict(n_iters=3, step_size=0.1, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        meta_optimize(quadratic, start(), **args)


def test_non_finite_gradient_names_the_meta_iteration():
    def objective(p, i):
        value, grad, info = quadratic(p, i)
        if i == 3:
            grad["a"] = grad["a"] * np.nan
        return value, grad, info

    with pytest.raises(FloatingPointError, match="meta-iteration 3"):
        meta_optimize(objective, start(), n_iters=5, step_size=0.1, progress=False)


def test_non_finite_meta_loss_and_wrong_gradient_structure():
    with pytest.raises(FloatingPointError, match="meta-iteration 0"):
        meta_optimize(lambda p, i: (np.inf, p, {}), start(), n_iters=2, step_size=0.1,
                      progress=False)
    with pytest.raises(ValueError, match="structure of params"):
        meta_optimize(lambda p, i: (1.0, {"a": p["a"]}, {}), start(), n_iters=2,
                      step_size=0.1, progress=False)


@pytest.mark.parametrize("bad_grad, match", [
    # the same number of entries as params, but under the wrong key: once only sizes were
    # compared, and the gradient for "b" was quietly applied to "c"
    (lambda g: {"a": g["a"], "c": g["b"]}, r"missing the keys \['b'\].*unexpected keys \['c'\]"),
    (lambda g: {"a": g["a"][:2], "b": np.append(g["b"], g["a"][2])},
     r"grad_params\['a'\] is an array of shape \(2,\), params there is .*\(3,\)"),
    (lambda g: {"a": g["a"].reshape(3, 1), "b": g["b"]}, r"shape \(3, 1\)"),
    (lambda g: [g["a"], g["b"]], "is a list of 2, params there is a dict"),
    (lambda g: {"a": list(g["a"]), "b": g["b"]}, r"grad_params\['a'\] is a list of 3"),
])
def test_gradient_under_the_wrong_key_or_shape_is_rejected_before_any_step(bad_grad, match):
    applied = []

    def objective(p, i):
        value, grad, info = quadratic(p, i)
        return value, bad_grad(grad), info

    with pytest.raises(ValueError, match="structure of params") as err:
        meta_optimize(objective, start(), n_iters=3, step_size=0.1, progress=False,
                      callback=lambda *a: applied.append(a))
    assert re.search(match, str(err.value)), str(err.value)
    assert "meta-iteration 0" in str(err.value)
    assert applied == []          # rejected before the first update


def test_structure_check_accepts_equivalent_containers():
    # a tuple for a list, a Python float for a 0-d array, dict keys in another order
    params = {"w": [np.zeros(2), np.array(0.0)], "s": np.zeros((2, 2))}

    def objective(p, i):
        return 0.0, {"s": np.ones((2, 2)), "w": (np.ones(2), 1.0)}, {}

    h = meta_optimize(objective, params, n_iters=1, step_size=0.5, method="sgd", progress=False)
    assert np.array_equal(h.final_params["s"], -0.5 * np.ones((2, 2)))
    assert np.array_equal(h.final_params["w"][0], -0.5 * np.ones(2))
    assert float(h.final_params["w"][1]) == -0.5


def test_structure_check_in_nested_lists():
    params = [np.zeros(2), [np.zeros(3), np.zeros(1)]]
    with pytest.raises(ValueError, match=r"grad_params\[1\]\[0\] is an array of shape \(1,\)"):
        meta_optimize(lambda p, i: (0.0, [np.zeros(2), [np.zeros(1), np.zeros(3)]], {}), params,
                      n_iters=1, step_size=0.1, progress=False)


def test_gradient_growth_finds_where_the_hypergradient_blows_up():
    h = MetaHistory()
    # falls from 1 to 0.1, flat, then grows by 10x per meta-iteration from i = 12 on
    norms = [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 1.0, 10.0, 100.0]
    h.grad_norm = norms
    # oracle by hand, window 1: the first i with norm > 10 * min(norms[:i]) = 1.0 -> i = 13
    assert h.gradient_growth(factor=10, window=1) == 13
    # window 3: means 0.667, 0.433, 0.3, 0.217, 0.15, 0.117, 0.1, 0.1, 0.1, 0.1, 0.4 (i=12),
    # 3.7 (i=13): 3.7 > 10 * 0.1
    assert h.gradient_growth(factor=10, window=3) == 13
    assert h.gradient_growth(factor=3, window=3) == 12
    assert h.gradient_growth(factor=2000, window=1) is None
    with pytest.raises(ValueError, match="factor"):
        h.gradient_growth(factor=0.5)
    with pytest.raises(ValueError, match="window"):
        h.gradient_growth(window=0)


def test_gradient_growth_on_a_real_run_stays_quiet_on_a_convex_problem():
    h = adam(quadratic, start(), n_iters=200, step_size=0.05, progress=False)
    assert h.gradient_growth(factor=10, window=5) is None
