"""The course checkers: right answers pass, and every wrong answer -- a usual mistake, or a
function that crashes, returns the wrong type or changes its inputs -- gets NOT YET feedback
saying what is wrong, never a raw exception.  (The notebooks and nbgrader: test_course.py.)"""
import copy
import math
import sys

import numpy as np
import pytest

from revlearn import ExactArray, hypergrad, train
from revlearn import assignments as A
from revlearn.momentum import exact_unstep_v, exact_unstep_x


def stub(*args):
    raise NotImplementedError()


def assert_not_yet(fb, *words):
    assert isinstance(fb, A.Feedback)
    assert not fb.passed and not bool(fb) and repr(fb).startswith("NOT YET: "), fb
    for w in words:
        assert w in fb.message, fb.message


def test_feedback_reads_as_pass_or_not_yet():
    assert repr(A.Feedback(True, "ok")) == "PASS: ok" and A.Feedback(True, "ok")
    assert str(A.Feedback(False, "no")) == "NOT YET: no" and not A.Feedback(False, "no")


# --- assignment 1: exact multiply ---------------------------------------------------------

def mul_ok(k, n, d, buffer):
    buffer.push(k % d, d)
    return (k // d) * n + buffer.pop(n)


def div_ok(k, n, d, buffer):
    buffer.push(k % n, n)
    return (k // n) * d + buffer.pop(d)


def mul_no_buffer(k, n, d, buffer):
    return k * n // d


def mul_forgets_remainder(k, n, d, buffer):
    return (k // d) * n


def mul_truncating(k, n, d, buffer):          # C-style division and remainder
    buffer.push(np.abs(np.fmod(k, d)), d)
    return np.trunc(k / d).astype(np.int64) * n + buffer.pop(n)


def mul_assumes_2_16(k, n, d, buffer):        # right while d = 2**16, as in the notebook
    buffer.push(k & 0xFFFF, 65536)
    return (k >> 16) * n + buffer.pop(n)


def div_identity(k, n, d, buffer):
    return k


def div_on_a_copy(k, n, d, buffer):           # right integers, but the digits stay behind
    return div_ok(k, n, d, copy.deepcopy(buffer))


def div_popping_twice(k, n, d, buffer):
    buffer.pop(d)
    return div_ok(k, n, d, buffer)


def exits(*args):
    sys.exit(1)


@pytest.mark.parametrize("seed", [None, 1502, 7])
def test_exact_multiply_passes_for_the_rule(seed):
    for fb in (A.check_mul_exact(mul_ok, seed=seed), A.check_div_exact(div_ok, seed=seed),
               A.check_exact_multiply(mul_ok, div_ok, seed=seed)):
        assert fb.passed and repr(fb).startswith("PASS: "), fb
        assert ("hidden" in fb.message) == (seed is not None)


WRONG_MULS = [
    (stub, ["NotImplementedError", "replace"]),
    (mul_no_buffer, ["nothing went into the buffer"]),
    (mul_forgets_remainder, ["nothing went into the buffer", "remainder k mod d is lost"]),
    (mul_truncating, ["only for negative k", "floor division"]),
    (lambda k, n, d, b: [1.5] * len(k), ["returned a list", "numpy integer array"]),
    (lambda k, n, d, b: np.full(len(k), 1.5), ["dtype float64", "integer operations"]),
    (lambda k, n, d, b: (mul_ok(k, n, d, b), b), ["returned a tuple of 2 items",
                                                  "need not be returned"]),
    (lambda k, n, d, b: tuple(mul_ok(k, n, d, b)), ["returned a tuple"]),
    (lambda k, n, d, b: None, ["returned None"]),
    (lambda k, n, d, b: {"k": mul_ok(k, n, d, b)}, ["returned a dict"]),
    (lambda k, n, d, b: mul_ok(k, n, d, b)[:-1], ["shape (7,)", "expected shape (8,)"]),
    (lambda k, n, d, b: mul_ok(k, n, d, b).astype(object), ["dtype object"]),
    (lambda k, n, d, b: 1 / 0, ["raised ZeroDivisionError"]),
    (exits, ["sys.exit()"]),
]


@pytest.mark.parametrize("mul, words", WRONG_MULS)
def test_mul_exact_says_what_is_wrong(mul, words):
    assert_not_yet(A.check_mul_exact(mul), *words)
    assert_not_yet(A.check_exact_multiply(mul, div_ok), *words)
    assert_not_yet(A.check_mul_exact(mul, seed=1502))


WRONG_DIVS = [
    (stub, ["div_exact raises NotImplementedError"]),
    (div_identity, ["div_exact does not undo", "off by"]),
    (div_on_a_copy, ["left digits in the buffer"]),
    (div_popping_twice, ["popped more from the buffer than had been pushed"]),
    (lambda k, n, d, b: (div_ok(k, n, d, b), b), ["returned a tuple"]),
    (lambda k, n, d, b: div_ok(k, n, d, b) / 1, ["dtype float64"]),
    (exits, ["sys.exit()"]),
]


@pytest.mark.parametrize("div, words", WRONG_DIVS)
def test_div_exact_says_what_is_wrong(div, words):
    assert_not_yet(A.check_div_exact(div), *words)
    assert_not_yet(A.check_exact_multiply(mul_ok, div), *words)
    assert_not_yet(A.check_div_exact(div, seed=1502))


def test_hidden_cases_catch_code_that_assumes_the_notebooks_denominator():
    assert A.check_mul_exact(mul_assumes_2_16).passed
    assert_not_yet(A.check_mul_exact(mul_assumes_2_16, seed=1502), "n/d =", "/1000")


def test_exact_multiply_catches_a_round_trip_that_drifts():
    # Right on the single-step cases (a BigIntBuffer), wrong by one unit after many steps.
    calls = {"n": 0}

    def div_drifting(k, n, d, buffer):
        out = div_ok(k, n, d, buffer)
        if isinstance(buffer, A.InfoBuffer):
            calls["n"] += 1
            return out + 1 if calls["n"] == 2 else out
        return out

    fb = A.check_exact_multiply(mul_ok, div_drifting)
    assert_not_yet(fb, "k_0 not recovered after 3 multiplies and 3 divides",
                   "1 unit in the last bit")


def test_the_reference_multiply_is_the_rule_the_students_implement():
    # The answer key against an independent oracle: the rule with a Python-integer stack
    # (a buffer starts as the integer 1; push: s = s * base + digit; pop: s, digit =
    # divmod(s, base)) and exact fractions.
    from fractions import Fraction
    for k, n, d in A._mul_cases(None) + A._mul_cases(1502):
        got = A._reference_mul(k, n, d, A.BigIntBuffer(len(k)))
        for ki, gi in zip(k.tolist(), got.tolist()):
            q, r = divmod(ki, d)             # floor division, 0 <= r < d
            store, low = divmod(1 * d + r, n)
            assert gi == q * n + low
            assert abs(Fraction(gi) - Fraction(ki * n, d)) < n


# --- assignment 2: one reverse step ------------------------------------------------------

def reverse_ok(X, V, gradient, alpha, n, d):
    X.sub(alpha * V.val)
    g = gradient(X.val)
    V.add((1 - n / d) * g)
    V.div(n, d)


def reverse_truncating_increment(X, V, gradient, alpha, n, d):
    X.k = X.k - np.trunc(alpha * V.val * 2.0 ** X.frac_bits).astype(np.int64)
    g = gradient(X.val)
    V.add((1 - n / d) * g)
    V.div(n, d)


def reverse_gradient_too_early(X, V, gradient, alpha, n, d):
    g = gradient(X.val)
    X.sub(alpha * V.val)
    V.add((1 - n / d) * g)
    V.div(n, d)


def reverse_float_division(X, V, gradient, alpha, n, d):
    X.sub(alpha * V.val)
    V.k = V.to_fixed((V.val + (1 - n / d) * gradient(X.val)) / (n / d))


def reverse_nominal_beta(X, V, gradient, alpha, n, d):
    X.sub(alpha * V.val)
    V.add((1 - round(n / d, 2)) * gradient(X.val))
    V.div(n, d)


def reverse_rebinding(X, V, gradient, alpha, n, d):
    X = ExactArray(X.val - alpha * V.val)  # noqa: F841 -- the mistake being tested


def reverse_writes_k_in_place(X, V, gradient, alpha, n, d):
    X.k[:] = X.to_fixed(X.val - alpha * V.val)


def reverse_adds_to_k_in_place(X, V, gradient, alpha, n, d):
    X.k += 1


def reverse_sets_k_none(X, V, gradient, alpha, n, d):
    X.k = None


def reverse_shortens_k(X, V, gradient, alpha, n, d):
    X.k = X.k[:-1]


def reverse_nan(X, V, gradient, alpha, n, d):
    X.sub(alpha * V.val * np.nan)


def reverse_drops_buffer(X, V, gradient, alpha, n, d):
    reverse_ok(X, V, gradient, alpha, n, d)
    V.buffer = None


def reverse_replaces_x_by_floats(X, V, gradient, alpha, n, d):
    X.k = X.val - alpha * V.val


@pytest.mark.parametrize("seed", [None, 3491, 11])
@pytest.mark.parametrize("part", [None, "x"])
def test_reverse_step_passes_for_the_exact_inverse(part, seed):
    fb = A.check_reverse_step(reverse_ok, part=part, seed=seed)
    assert fb.passed, fb.message


@pytest.mark.parametrize("fn, words", [
    (stub, ["NotImplementedError"]),
    (reverse_truncating_increment, ["x_2 not recovered", "1 unit in the last bit",
                                    "round the increment the same way"]),
    (reverse_gradient_too_early, ["v_2 not recovered", "evaluated at x_{t+1}"]),
    (reverse_float_division, ["divided by beta in floating point", "V.div(n, d)"]),
    (reverse_nominal_beta, ["exact fraction n/d"]),
    (reverse_rebinding, ["X did not change", "in place"]),
    (reverse_writes_k_in_place, ["read-only", "X.sub"]),
    (reverse_adds_to_k_in_place, ["read-only", "X.k = new_k"]),
    (reverse_sets_k_none, ["raised TypeError", "k must be a 1-D integer array",
                           "whole 1-D integer array"]),
    (reverse_shortens_k, ["raised ValueError", "keep its shape"]),
    (reverse_nan, ["raised FloatingPointError", "NaN or infinite"]),
    (reverse_drops_buffer, ["V.buffer is None", "leave the buffer"]),
    (reverse_replaces_x_by_floats, ["raised TypeError", "k must be"]),
    (exits, ["sys.exit()"]),
])
def test_reverse_step_says_what_is_wrong(fn, words):
    assert_not_yet(A.check_reverse_step(fn), *words)
    assert_not_yet(A.check_reverse_step(fn, seed=3491))


def test_reverse_step_x_part_grades_the_weights_alone():
    # v is undone in floats: the weights still come back, each step, from the exact state.
    assert A.check_reverse_step(reverse_float_division, part="x").passed
    assert_not_yet(A.check_reverse_step(reverse_float_division), "v_")
    assert A.check_reverse_step(reverse_gradient_too_early, part="x").passed
    assert_not_yet(A.check_reverse_step(reverse_truncating_increment, part="x"),
                   "round the increment the same way")


def test_reverse_step_reports_which_step_went_wrong():
    # Exact except for one extra unit in x at the third reverse step.
    count = {"n": 0}

    def late_slip(X, V, gradient, alpha, n, d):
        reverse_ok(X, V, gradient, alpha, n, d)
        count["n"] += 1
        if count["n"] == 3:
            X.k = X.k + 1

    assert_not_yet(A.check_reverse_step(late_slip), "x_0 not recovered after 3 reverse steps",
                   "1 unit in the last bit")


def test_a_bad_part_is_the_callers_error():
    with pytest.raises(ValueError, match="part must be"):
        A.check_reverse_step(reverse_ok, part="v")
    with pytest.raises(ValueError, match="part must be"):
        A.check_reverse_pass(stub, part="alphas")


# --- assignment 3: the hypergradient ------------------------------------------------------

@pytest.fixture(scope="module")
def problem():
    return A.tuning_problem()


def hypergradient_ok(log_alpha, problem):
    alpha = math.exp(log_alpha)
    r = hypergrad(problem.train_loss, problem.meta_loss, problem.x0,
                  np.full(problem.T, alpha), np.full(problem.T, problem.beta))
    return r.meta_loss, alpha * float(np.sum(r.d_alphas))


def test_oracle_matches_finite_differences(problem):
    # The checks' answer key against an independent oracle: central differences of
    # float training with the same fractions n/d.
    def loss(la):
        r = train(problem.train_loss, problem.x0, np.full(problem.T, math.exp(la)),
                  np.full(problem.T, problem.beta), denominator_bits=16)
        return problem.meta_loss(r.x_final, None)

    for la in (-1.5, 2.5):
        h = 1e-4
        fd = (loss(la + h) - loss(la - h)) / (2 * h)
        value, deriv, _ = A._oracle(problem, la)
        assert value == pytest.approx(loss(la), rel=1e-12)
        assert deriv == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("seed", [None, 2718])
def test_hypergradient_passes(problem, seed):
    assert A.check_hypergradient(hypergradient_ok, problem if seed is None else None,
                                 seed=seed).passed
    assert A.check_hypergradient(hypergradient_ok, seed=seed).passed   # its own problem


def mutates_x0_and_answers_for_it(log_alpha, problem):
    problem.x0 += 0.01
    return hypergradient_ok(log_alpha, problem)


def mutates_x0_after_answering(log_alpha, problem):
    out = hypergradient_ok(log_alpha, problem)
    problem.x0[:] = 1.0
    return out


def rebinds_T(log_alpha, problem):
    problem.T = 10
    return hypergradient_ok(log_alpha, problem)


def hardcodes_T(log_alpha, problem):
    alpha = math.exp(log_alpha)
    r = hypergrad(problem.train_loss, problem.meta_loss, problem.x0, np.full(40, alpha),
                  np.full(40, problem.beta))
    return r.meta_loss, alpha * float(np.sum(r.d_alphas))


@pytest.mark.parametrize("fn, words", [
    (stub, ["NotImplementedError"]),
    (lambda la, p: (hypergradient_ok(la, p)[0], -hypergradient_ok(la, p)[1]), ["wrong sign"]),
    (lambda la, p: (hypergradient_ok(la, p)[0], hypergradient_ok(la, p)[1] / math.exp(la)),
     ["d/d(alpha)", "chain rule"]),
    (lambda la, p: (0.0, hypergradient_ok(la, p)[1]), ["meta-loss is 0", "validation loss"]),
    (lambda la, p: (1.0, np.ones(p.T)), ["array of shape (40,)", "add up"]),
    (lambda la, p: 3.0, ["must return two numbers", "a float"]),
    (lambda la, p: (hypergradient_ok(la, p)[0], None), ["the derivative", "is None"]),
    (lambda la, p: (None, hypergradient_ok(la, p)[1]), ["the meta-loss", "is None"]),
    (lambda la, p: (hypergradient_ok(la, p)[0], np.array([])), ["shape (0,)"]),
    (lambda la, p: np.array([]), ["must return two numbers", "shape (0,)"]),
    (lambda la, p: (float("nan"), 1.0), ["is nan", "finite"]),
    (lambda la, p: ("0.3", 1.0), ["the string '0.3'", "not a number"]),
    (lambda la, p: {"loss": 1.0, "d": 2.0}, ["must return two numbers", "a dict"]),
    (lambda la, p: (1.0, [1.0, [2.0]]), ["a list of 2 items", "not a number"]),
    (mutates_x0_and_answers_for_it, ["changed problem.x0", "must not change"]),
    (mutates_x0_after_answering, ["changed problem.x0"]),
    (rebinds_T, ["changed problem.T"]),
    (exits, ["sys.exit()"]),
])
def test_hypergradient_says_what_is_wrong(problem, fn, words):
    assert_not_yet(A.check_hypergradient(fn, problem), *words)
    assert_not_yet(A.check_hypergradient(fn, seed=2718))


def test_a_mutating_function_cannot_fool_the_check_through_the_callers_problem(problem):
    # Issue 10, item 6: the check compares with the pristine problem, never with the one the
    # student's function changed, and the caller's problem is left as it was.
    before = problem.x0.copy()
    assert_not_yet(A.check_hypergradient(mutates_x0_and_answers_for_it, problem))
    assert_not_yet(A.check_tuning(lambda la, p, s, lr: mutates_x0_and_answers_for_it(la, p)
                                  and tune_ok(la, p, s, lr), problem), "changed problem.x0")
    assert np.array_equal(problem.x0, before)


def test_hidden_cases_catch_a_hardcoded_horizon():
    assert A.check_hypergradient(hardcodes_T).passed           # T = 40 in the notebook
    assert_not_yet(A.check_hypergradient(hardcodes_T, seed=2718), "meta-loss")


def tune_ok(log_alpha, problem, steps, meta_lr):
    path = [log_alpha]
    for _ in range(steps):
        log_alpha = log_alpha - meta_lr * hypergradient_ok(log_alpha, problem)[1]
        path.append(log_alpha)
    return path


@pytest.mark.parametrize("seed", [None, 2718])
def test_tuning_passes_and_reports_the_improvement(problem, seed):
    fb = A.check_tuning(tune_ok, problem if seed is None else None, seed=seed)
    assert fb.passed, fb.message
    before, after = (float(s) for s in fb.message.split("validation loss ")[1].rstrip(".").split(" -> "))
    assert after < before


def tune_generator(la, p, s, lr):
    yield from tune_ok(la, p, s, lr)


@pytest.mark.parametrize("fn, words", [
    (stub, ["NotImplementedError"]),
    (lambda la, p, s, lr: tune_ok(la, p, s, -lr), ["stepped uphill"]),
    (lambda la, p, s, lr: tune_ok(la, p, s, lr)[1:], ["expected 4 values"]),
    (lambda la, p, s, lr: tune_ok(la, p, s, 2 * lr), ["step 1", "expected"]),
    (lambda la, p, s, lr: None, ["list of visited log_alphas", "None"]),
    (lambda la, p, s, lr: [la, "x", 0, 0], ["value 1 of the returned list", "'x'",
                                           "not a number"]),
    (lambda la, p, s, lr: {0: la}, ["list of visited log_alphas", "a dict"]),
    (lambda la, p, s, lr: [la, None, 0, 0], ["value 1", "None"]),
    (lambda la, p, s, lr: [la, float("nan"), 0, 0], ["value 1", "nan"]),
    (lambda la, p, s, lr: np.array(tune_ok(la, p, s, lr))[:, None], ["an array"]),
    (tune_generator, ["a generator"]),
    (lambda la, p, s, lr: setattr(p, "beta", 0.5) or tune_ok(la, p, s, lr),
     ["changed problem.beta"]),
])
def test_tuning_says_what_is_wrong(problem, fn, words):
    assert_not_yet(A.check_tuning(fn, problem), *words)
    assert_not_yet(A.check_tuning(fn, seed=2718))


def test_a_numpy_path_is_accepted(problem):
    assert A.check_tuning(lambda la, p, s, lr: np.array(tune_ok(la, p, s, lr)), problem).passed


# --- assignment 4: the reverse pass -------------------------------------------------------

SOLUTION = '''
def reverse_pass(X, V, problem, d_x):
    T, G = problem.T, problem.G
    d_x = np.array(d_x, dtype=float)
    d_v = np.zeros_like(d_x)
    d_alphas = np.zeros((T, G))
    d_betas = np.zeros((T, G))
    d_theta = np.zeros_like(problem.theta)
    for t in reversed(range(T)):
        alpha, beta = problem.alpha(t), problem.beta(t)
        x_next, v_next = X.val, V.val
        d_alphas[t] = np.bincount(problem.groups, weights=d_x * V.val, minlength=G)
        exact_unstep_x(X, V, alpha)
        g = problem.gradient(X.val, t)
        exact_unstep_v(V, g, problem.numerator(t), problem.d)
        d_v += alpha * d_x
        d_betas[t] = np.bincount(problem.groups, weights=d_v * (V.val + g), minlength=G)
        h_x, h_theta = problem.hvp(X.val, t, (1 - beta) * d_v)
        d_x -= h_x
        d_theta -= h_theta
        d_v *= beta
    return {"d_x0": d_x, "d_v0": d_v, "d_alphas": d_alphas, "d_betas": d_betas,
            "d_theta": d_theta}
'''
LINE = {   # lines of SOLUTION, to move or replace (each appears exactly once)
    "alpha": "        d_alphas[t] = np.bincount(problem.groups, weights=d_x * V.val, minlength=G)\n",
    "unstep_x": "        exact_unstep_x(X, V, alpha)\n",
    "g": "        g = problem.gradient(X.val, t)\n",
    "unstep_v": "        exact_unstep_v(V, g, problem.numerator(t), problem.d)\n",
    "dv_add": "        d_v += alpha * d_x\n",
    "beta": "        d_betas[t] = np.bincount(problem.groups, weights=d_v * (V.val + g), minlength=G)\n",
    "hvp": "        h_x, h_theta = problem.hvp(X.val, t, (1 - beta) * d_v)\n",
    "dx": "        d_x -= h_x\n",
    "dtheta": "        d_theta -= h_theta\n",
    "scale": "        d_v *= beta\n",
}


def student(*edits):
    """SOLUTION with edits applied, compiled: ("move", line, after_line) puts a line after
    another; ("replace", old, new) swaps text; a student's version of a mistake."""
    src = SOLUTION
    for edit in edits:
        if edit[0] == "move":
            line, after = LINE[edit[1]], LINE[edit[2]]
            assert src.count(line) == 1 and src.count(after) == 1
            src = src.replace(line, "").replace(after, after + line)
        elif edit[0] == "before":
            line, before = LINE[edit[1]], LINE[edit[2]]
            src = src.replace(line, "").replace(before, line + before)
        else:
            assert edit[1] in src, edit[1]
            src = src.replace(edit[1], edit[2])
    namespace = {"np": np, "exact_unstep_x": exact_unstep_x, "exact_unstep_v": exact_unstep_v}
    exec(src, namespace)  # noqa: S102 -- test code we wrote
    return namespace["reverse_pass"]


GROUP_SUM = "np.bincount(problem.groups, weights=d_x * V.val, minlength=G)"
BETA_SUM = "np.bincount(problem.groups, weights=d_v * (V.val + g), minlength=G)"
STATE, GRADIENT_PARTS = "state", ("d_alphas", "d_betas", "d_x0", "d_theta")
ALL_BUT_STATE = set(GRADIENT_PARTS)

# (name, edits, parts that fail, words of the message for the first failing part)
MISTAKES = [
    ("d_alphas read after V is undone", [("move", "alpha", "unstep_v")], {"d_alphas"},
     ["needs the velocity before you undo it"]),
    ("d_alphas read after dx is updated",
     [("move", "alpha", "dx"), ("replace", "weights=d_x * V.val", "weights=d_x * v_next")],
     {"d_alphas"},
     ["before the Hessian-vector product"]),
    ("d_alphas summed over all parameters",
     [("replace", GROUP_SUM, "np.full(G, np.dot(d_x, V.val))")], {"d_alphas"},
     ["sum over all parameters in every group", "np.bincount"]),
    ("d_betas summed over all parameters",
     [("replace", BETA_SUM, "np.full(G, np.dot(d_v, V.val + g))")], {"d_betas"},
     ["sum over all parameters in every group"]),
    ("d_betas read before dv += alpha dx", [("before", "beta", "dv_add")], {"d_betas"},
     ["read before dv += alpha_t dx"]),
    ("d_betas read after dv *= beta", [("move", "beta", "scale")], {"d_betas"},
     ["read after dv *= beta_t"]),
    ("d_betas with v_{t+1}", [("replace", "(V.val + g)", "(v_next + g)")], {"d_betas"},
     ["it used v_{t+1} instead of v_t"]),
    ("d_betas without g", [("replace", "weights=d_v * (V.val + g)", "weights=d_v * V.val")],
     {"d_betas"}, ["you left out g_t"]),
    ("d_betas with v_t - g_t", [("replace", "(V.val + g)", "(V.val - g)")], {"d_betas"},
     ["not v_t - g_t"]),
    ("no (1 - beta) on the HVP", [("replace", "(1 - beta) * d_v)", "d_v)")], ALL_BUT_STATE,
     ["misses the factor (1 - beta_t)"]),
    ("(1 - beta) after the HVP",
     [("replace", "(1 - beta) * d_v)", "d_v)"),
      ("replace", "d_x -= h_x", "d_x -= (1 - beta) * h_x"),
      ("replace", "d_theta -= h_theta", "d_theta -= (1 - problem.betas[t]) * h_theta")],
     ALL_BUT_STATE, ["must multiply dv before the Hessian-vector product"]),
    ("HVP with the wrong sign", [("replace", "d_x -= h_x", "d_x += h_x"),
                                 ("replace", "d_theta -= h_theta", "d_theta += h_theta")],
     ALL_BUT_STATE, ["wrong sign"]),
    ("d_theta with the wrong sign", [("replace", "d_theta -= h_theta", "d_theta += h_theta")],
     {"d_theta"}, ["d_theta has the wrong sign"]),
    ("d_theta without (1 - beta)",
     [("replace", "d_theta -= h_theta", "d_theta -= problem.hvp(X.val, t, d_v)[1]")],
     {"d_theta"}, ["d_theta misses the factor (1 - beta_t)"]),
    ("d_theta assigned, not accumulated",
     [("replace", "d_theta -= h_theta", "d_theta = -h_theta")], {"d_theta"},
     ["keeps only the last iteration's term"]),
    ("dv not scaled by beta", [("replace", LINE["scale"], "")], ALL_BUT_STATE,
     ["never multiplied by beta_t"]),
    ("dv scaled before adding alpha dx", [("before", "scale", "dv_add")], ALL_BUT_STATE,
     ["dv *= beta_t came before dv += alpha_t dx"]),
    ("HVP before dv += alpha dx", [("before", "hvp", "dv_add")], ALL_BUT_STATE,
     ["used dv before dv += alpha_t dx"]),
    ("HVP at x_{t+1}", [("replace", "problem.hvp(X.val,", "problem.hvp(x_next,")],
     ALL_BUT_STATE, ["evaluated at x_{t+1}"]),
    ("everything with the wrong sign", [("replace", "d_x = np.array(d_x, dtype=float)",
                                         "d_x = -np.array(d_x, dtype=float)")],
     ALL_BUT_STATE, ["wrong sign everywhere"]),
    ("V undone before X", [("before", "unstep_v", "unstep_x"), ("before", "g", "unstep_v")],
     {STATE} | ALL_BUT_STATE, ["exact_unstep_x needs v_{t+1}"]),
    ("g at x_{t+1}", [("before", "g", "unstep_x")], {STATE} | ALL_BUT_STATE,
     ["g_t was computed before undoing x"]),
    ("forward order", [("replace", "reversed(range(T))", "range(T)")],
     {STATE} | ALL_BUT_STATE, ["from t = T-1 down to 0"]),
    ("x never undone", [("replace", LINE["unstep_x"], "")], {STATE} | ALL_BUT_STATE,
     ["X still holds x_T"]),
]


def test_the_right_reverse_pass_passes_every_part():
    fn = student()
    for seed in (None, 1502, 99):
        for part in (None, STATE, *GRADIENT_PARTS):
            fb = A.check_reverse_pass(fn, part=part, seed=seed)
            assert fb.passed, (part, seed, fb.message)


def test_the_answer_key_agrees_with_the_exact_engine_and_finite_differences():
    # hypergrad_unrolled (the checker's oracle) against revlearn.hypergrad (exact reversal) and
    # against central differences of plain float training with the same fractions n/d.
    p = A.reverse_pass_problem(3, T=6, n_groups=2)
    case = A._ReversePassCase("test", p)
    want = case.oracle()
    r = hypergrad(p.train_loss, p.valid_loss, p.x0, p.alphas, p.betas, p.theta, groups=p.groups)
    np.testing.assert_allclose(r.d_alphas, want["d_alphas"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(r.d_meta, want["d_theta"], rtol=1e-9, atol=1e-14)

    def f(alphas=p.alphas, betas=p.betas, theta=p.theta):
        out = train(lambda x, th, t: p.train_loss(x, th, t), p.x0, alphas, betas, theta,
                    groups=p.groups, denominator_bits=None)
        return p.valid_loss(out.x_final, theta)

    h = 1e-6
    for (t, g) in ((0, 1), (p.T - 1, 0)):
        e = np.zeros_like(p.alphas)
        e[t, g] = h
        assert (f(alphas=p.alphas + e) - f(alphas=p.alphas - e)) / (2 * h) == \
            pytest.approx(want["d_alphas"][t, g], rel=1e-5, abs=1e-9)
        assert (f(betas=p.betas + e) - f(betas=p.betas - e)) / (2 * h) == \
            pytest.approx(want["d_betas"][t, g], rel=1e-5, abs=1e-9)
    e = np.array([h, 0.0])
    assert (f(theta=p.theta + e) - f(theta=p.theta - e)) / (2 * h) == \
        pytest.approx(want["d_theta"][0], rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("name, edits, failing, words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_reverse_pass_names_the_mistake(name, edits, failing, words):
    fn = student(*edits)
    parts = (STATE, *GRADIENT_PARTS)
    verdicts = {part: A.check_reverse_pass(fn, part=part) for part in parts}
    assert {part for part, fb in verdicts.items() if not fb.passed} == failing
    first = next(part for part in parts if part in failing)
    assert_not_yet(verdicts[first], *words)
    if STATE in failing:     # the hypergradient parts say why they cannot pass yet
        assert_not_yet(verdicts["d_alphas"], "can only be right once the loop walks")
    assert_not_yet(A.check_reverse_pass(fn), *words)                 # no wrong answer passes
    assert_not_yet(A.check_reverse_pass(fn, seed=1502))


def test_reverse_pass_says_where_an_unknown_mistake_enters():
    # dv scaled twice from the second iteration on: no named mistake, the last t still right.
    fn = student(("replace", LINE["scale"], "        d_v *= beta if t == T - 1 else beta ** 2\n"))
    assert_not_yet(A.check_reverse_pass(fn, part="d_alphas"),
                   "It is right for t = 7 down to 5 and first wrong at t = 4",
                   "what carries over")


def _right(X, V, problem, d_x):
    return student()(X, V, problem, d_x)


def returning(transform):
    def fn(X, V, problem, d_x):
        return transform(_right(X, V, problem, d_x), problem)
    return fn


def then(action):
    def fn(X, V, problem, d_x):
        out = _right(X, V, problem, d_x)
        action(X, V, problem)
        return out
    return fn


def before(action):
    def fn(X, V, problem, d_x):
        action(X, V, problem)
        return _right(X, V, problem, d_x)
    return fn


def _set(obj, name, value):
    setattr(obj, name, value)


CRASHES = [
    (stub, ["reverse_pass raises NotImplementedError"]),
    (returning(lambda out, p: None), ["returned None", "return the dict"]),
    (returning(lambda out, p: tuple(out.values())), ["a tuple of 5 items", "return a dict"]),
    (returning(lambda out, p: {k: v for k, v in out.items() if k != "d_theta"}),
     ["no key 'd_theta'"]),
    (returning(lambda out, p: {**out, "d_alphas": np.zeros((p.T, p.N))}),
     ["shape (8, 9)", "one value per parameter"]),
    (returning(lambda out, p: {**out, "d_alphas": out["d_alphas"].sum(axis=1)}),
     ["shape (8,)", "one value per iteration"]),
    (returning(lambda out, p: {**out, "d_betas": out["d_betas"] * np.nan}), ["not finite"]),
    (returning(lambda out, p: {**out, "d_x0": "x"}), ["d_x0 is the string 'x'",
                                                     "not an array of numbers"]),
    (returning(lambda out, p: {**out, "d_v0": None}), ["d_v0", "not an array of numbers"]),
    (before(lambda X, V, p: X.k.__setitem__(0, 0)), ["read-only", "X.sub"]),
    (before(lambda X, V, p: p.hvp(X.val, 0, np.zeros(3))), ["w must be 9 real numbers"]),
    (before(lambda X, V, p: p.gradient(X.val, p.T)), ["t must be an iteration number 0..7"]),
    (before(lambda X, V, p: p.gradient(X.val, 0.5)), ["t must be an iteration number"]),
    (then(lambda X, V, p: p.theta.__setitem__(0, 0.0)), ["changed problem.theta"]),
    (before(lambda X, V, p: p.alphas.__imul__(1.5)), ["changed problem.alphas"]),
    (then(lambda X, V, p: _set(p, "T", 3)), ["changed problem.T"]),
    (then(lambda X, V, p: _set(V, "buffer", None)), ["V.buffer was replaced"]),
    (before(lambda X, V, p: _set(X, "k", X.val)), ["raised TypeError", "k must be"]),
    (exits, ["sys.exit()"]),
]


@pytest.mark.parametrize("fn, words", CRASHES)
def test_reverse_pass_turns_every_crash_into_feedback(fn, words):
    assert_not_yet(A.check_reverse_pass(fn), *words)
    assert_not_yet(A.check_reverse_pass(fn, seed=1502))


def test_every_named_mistake_is_far_from_the_right_answer():
    # Each recognised mistake must change what it touches by much more than the tolerance
    # (1e-6), on the notebook's problem and on hidden ones: else a wrong answer could pass.
    for seed in (None, 1502, 20):
        for _, problem in A._reverse_pass_cases(seed):
            case = A._ReversePassCase("", problem)
            want = case.oracle()
            for name in A._GRADIENT_MISTAKES:
                grads = case.mistake(name)[0]
                moved = [k for k in A._KEYS if not A._allclose(grads[k], want[k], rtol=1e-3)]
                if problem.G == 1 and name in ("alpha_total", "beta_total",
                                               "one_minus_beta_outside"):
                    assert not moved     # the same thing with one group
                else:
                    assert moved, (name, seed)
