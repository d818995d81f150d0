"""Course assignments: the checks' verdicts and hints, the student-version generator,
and the shipped assignment notebooks."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from revlearn import BigIntBuffer, ExactArray, hypergrad, train
from revlearn import assignments as A

ASSIGNMENTS = Path(__file__).resolve().parents[1] / "notebooks" / "assignments"
SOLUTIONS = sorted(ASSIGNMENTS.glob("*-solution.ipynb"))


def stub(*args):
    raise NotImplementedError()


# --- assignment 1: exact multiply ---------------------------------------------------------

def mul_ok(k, n, d, buffer):
    buffer.push(k % d, d)
    return (k // d) * n + buffer.pop(n)


def div_ok(k, n, d, buffer):
    buffer.push(k % n, n)
    return (k // n) * d + buffer.pop(d)


def mul_no_buffer(k, n, d, buffer):
    return k * n // d


def mul_truncating(k, n, d, buffer):          # C-style division and remainder
    buffer.push(np.abs(np.fmod(k, d)), d)
    return np.trunc(k / d).astype(np.int64) * n + buffer.pop(n)


def div_identity(k, n, d, buffer):
    return k


def div_on_a_copy(k, n, d, buffer):           # right integers, but the digits stay behind
    return div_ok(k, n, d, copy.deepcopy(buffer))


def div_popping_twice(k, n, d, buffer):
    buffer.pop(d)
    return div_ok(k, n, d, buffer)


def test_exact_multiply_passes_for_the_rule():
    fb = A.check_exact_multiply(mul_ok, div_ok)
    assert fb.passed and bool(fb) and repr(fb).startswith("PASS: ")


@pytest.mark.parametrize("mul, div, words", [
    (stub, div_ok, ["NotImplementedError", "replace"]),
    (mul_ok, stub, ["div_exact raises NotImplementedError"]),
    (mul_no_buffer, div_ok, ["nothing went into the buffer"]),
    (mul_truncating, div_ok, ["only for negative k", "floor division"]),
    (mul_ok, div_identity, ["div_exact does not undo", "off by"]),
    (mul_ok, div_on_a_copy, ["left digits in the buffer"]),
    (mul_ok, div_popping_twice, ["popped more from the buffer than had been pushed"]),
    (lambda k, n, d, b: [1.5] * len(k), div_ok, ["dtype", "integers"]),
    (lambda k, n, d, b: 1 / 0, div_ok, ["raised ZeroDivisionError"]),
])
def test_exact_multiply_says_what_is_wrong(mul, div, words):
    fb = A.check_exact_multiply(mul, div)
    assert not fb.passed and repr(fb).startswith("NOT YET: ")
    for w in words:
        assert w in fb.message, fb.message


def test_exact_multiply_catches_a_round_trip_that_drifts():
    # Right on the single-step cases (a BigIntBuffer), wrong by one unit after many steps.
    calls = {"n": 0}

    def div_drifting(k, n, d, buffer):
        calls["n"] += 1
        out = div_ok(k, n, d, buffer)
        return out + 1 if isinstance(buffer, A.InfoBuffer) and calls["n"] == 7 else out

    fb = A.check_exact_multiply(mul_ok, div_drifting)
    assert not fb.passed
    assert "k_0 not recovered after 3 multiplies and 3 divides" in fb.message
    assert "1 unit in the last bit" in fb.message


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


def test_reverse_step_passes_for_the_exact_inverse():
    fb = A.check_reverse_step(reverse_ok)
    assert fb.passed, fb.message


@pytest.mark.parametrize("fn, words", [
    (stub, ["NotImplementedError"]),
    (reverse_truncating_increment, ["x_2 not recovered", "1 unit in the last bit",
                                    "round the increment the same way"]),
    (reverse_gradient_too_early, ["v_2 not recovered", "evaluated at x_{t+1}"]),
    (reverse_float_division, ["divided by beta in floating point", "V.div(n, d)"]),
    (reverse_nominal_beta, ["exact fraction n/d"]),
    (reverse_rebinding, ["X did not change", "in place"]),
])
def test_reverse_step_says_what_is_wrong(fn, words):
    fb = A.check_reverse_step(fn)
    assert not fb.passed
    for w in words:
        assert w in fb.message, fb.message


def test_reverse_step_reports_which_step_went_wrong():
    # Exact except for one extra unit in x at the third reverse step.
    count = {"n": 0}

    def late_slip(X, V, gradient, alpha, n, d):
        reverse_ok(X, V, gradient, alpha, n, d)
        count["n"] += 1
        if count["n"] == 3:
            X.k = X.k + 1

    fb = A.check_reverse_step(late_slip)
    assert not fb.passed
    assert "x_0 not recovered after 3 reverse steps" in fb.message
    assert "1 unit in the last bit" in fb.message


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


def test_hypergradient_passes(problem):
    fb = A.check_hypergradient(hypergradient_ok, problem)
    assert fb.passed, fb.message


@pytest.mark.parametrize("fn, words", [
    (stub, ["NotImplementedError"]),
    (lambda la, p: (hypergradient_ok(la, p)[0], -hypergradient_ok(la, p)[1]), ["wrong sign"]),
    (lambda la, p: (hypergradient_ok(la, p)[0], hypergradient_ok(la, p)[1] / math.exp(la)),
     ["d/d(alpha)", "chain rule"]),
    (lambda la, p: (0.0, hypergradient_ok(la, p)[1]), ["meta-loss is 0", "validation loss"]),
    (lambda la, p: (1.0, np.ones(p.T)), ["array of shape (40,)", "add up"]),
    (lambda la, p: 3.0, ["must return two numbers"]),
])
def test_hypergradient_says_what_is_wrong(problem, fn, words):
    fb = A.check_hypergradient(fn, problem)
    assert not fb.passed
    for w in words:
        assert w in fb.message, fb.message


def tune_ok(log_alpha, problem, steps, meta_lr):
    path = [log_alpha]
    for _ in range(steps):
        log_alpha = log_alpha - meta_lr * hypergradient_ok(log_alpha, problem)[1]
        path.append(log_alpha)
    return path


def test_tuning_passes_and_reports_the_improvement(problem):
    fb = A.check_tuning(tune_ok, problem)
    assert fb.passed, fb.message
    before, after = (float(s) for s in fb.message.split("validation loss ")[1].rstrip(".").split(" -> "))
    assert after < before


@pytest.mark.parametrize("fn, words", [
    (stub, ["NotImplementedError"]),
    (lambda la, p, s, lr: tune_ok(la, p, s, -lr), ["stepped uphill"]),
    (lambda la, p, s, lr: tune_ok(la, p, s, lr)[1:], ["expected 4 values"]),
    (lambda la, p, s, lr: tune_ok(la, p, s, 2 * lr), ["step 1", "expected"]),
    (lambda la, p, s, lr: None, ["list of visited log_alphas"]),
])
def test_tuning_says_what_is_wrong(problem, fn, words):
    fb = A.check_tuning(fn, problem)
    assert not fb.passed
    for w in words:
        assert w in fb.message, fb.message


# --- the student-version generator ----------------------------------------------------------

def _nb(*cells):
    return {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


def _code(source, solution=False, outputs=None):
    meta = {"nbgrader": {"solution": True, "grade": False, "grade_id": "x", "locked": False,
                         "schema_version": 3, "task": False}} if solution else {}
    return {"cell_type": "code", "id": "c", "metadata": meta, "execution_count": 3,
            "outputs": outputs or [{"output_type": "stream", "name": "stdout", "text": "hi"}],
            "source": source}


def test_student_version_replaces_regions_like_nbgrader():
    src = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n"
           "    ### END SOLUTION\n\nprint(f(1))")
    nb = _nb(_code(src, solution=True), _code("print(2)"),
             {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "Text"})
    before = copy.deepcopy(nb)
    out = A.make_student_version(nb)
    assert nb == before                                  # the input is untouched
    assert "".join(out["cells"][0]["source"]) == (
        "def f(x):\n    \"\"\"Doc.\"\"\"\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
        "\nprint(f(1))")
    assert "".join(out["cells"][1]["source"]) == "print(2)"
    assert "".join(out["cells"][2]["source"]) == "Text"
    for cell in out["cells"][:2]:
        assert cell["outputs"] == [] and cell["execution_count"] is None
    assert out["cells"][0]["metadata"]["nbgrader"]["solution"] is True


def test_student_version_stubs_whole_solution_cells_and_markdown_regions():
    md = {"cell_type": "markdown", "id": "m", "source": "Why?\n### BEGIN SOLUTION\nBecause.\n"
          "### END SOLUTION", "metadata": {"nbgrader": {"solution": True}}}
    nb = _nb(_code("x = 1", solution=True), md)
    out = A.make_student_version(nb)
    assert "".join(out["cells"][0]["source"]) == A.CODE_STUB
    assert "".join(out["cells"][1]["source"]) == "Why?\nYOUR ANSWER HERE"


@pytest.mark.parametrize("source, solution, match", [
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", False, "not marked as an nbgrader solution"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", True, "nested"),
    ("### BEGIN SOLUTION\nx = 1", True, "without a matching"),
    ("x = 1\n### END SOLUTION", True, "without a '### BEGIN SOLUTION'"),
])
def test_student_version_rejects_malformed_regions(source, solution, match):
    with pytest.raises(ValueError, match=match):
        A.make_student_version(_nb(_code(source, solution=solution)))


# --- the shipped assignment notebooks -------------------------------------------------------

def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _joined(nb):
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
    return nb


def _exercise_of(solution):
    return solution.with_name(solution.name.replace("-solution", "-exercise"))


def _check_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"
            and "check_" in "".join(c["source"]) and "import" not in "".join(c["source"])]


def test_there_are_at_least_three_assignments_each_with_an_exercise():
    assert len(SOLUTIONS) >= 3
    for s in SOLUTIONS:
        assert _exercise_of(s).exists(), f"{_exercise_of(s).name} is missing"
    assert len(list(ASSIGNMENTS.glob("*-exercise.ipynb"))) == len(SOLUTIONS)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_shipped_exercise_is_the_generated_student_version(solution):
    generated = A.make_student_version(_load(solution))
    shipped = _load(_exercise_of(solution))
    assert _joined(shipped) == _joined(generated), (
        f"{_exercise_of(solution).name} is out of date: regenerate it with "
        f"python -m revlearn.assignments {solution.name} {_exercise_of(solution).name}")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_is_marked_up_and_its_checks_passed(solution):
    nb = _load(solution)
    marked = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert marked and all("### BEGIN SOLUTION" in "".join(c["source"]) for c in marked)
    checks = _check_cells(nb)
    assert checks
    for cell in checks:
        assert "".join(cell["source"]).startswith("# NBVAL_CHECK_OUTPUT")
        text = json.dumps(cell["outputs"])
        assert "PASS: " in text and "NOT YET" not in text


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_notebook_runs_and_its_checks_say_not_yet(solution):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(_exercise_of(solution), as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ASSIGNMENTS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    checks = _check_cells(nb)
    assert checks
    for cell in checks:
        text = json.dumps(cell.outputs)
        assert "NOT YET: " in text and "PASS" not in text
