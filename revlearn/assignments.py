"""Course assignments: hidden checks with specific feedback, and student versions.

The notebooks in ``notebooks/assignments/`` ask students to write three pieces
of reversible learning themselves:

1. ``mul_exact``/``div_exact`` -- multiply fixed-point integers by beta = n/d
   exactly, and undo it (``check_exact_multiply``);
2. ``reverse_step`` -- undo one exact step of momentum SGD
   (``check_reverse_step``);
3. ``hypergradient``/``tune_log_alpha`` -- the gradient of the validation
   loss with respect to log(step size), and gradient descent on it
   (``check_hypergradient``, ``check_tuning``).

Each ``check_...`` runs the student's function on hidden cases, compares the
results with revlearn's own engine and returns a ``Feedback``: "PASS" or
"NOT YET" with what is wrong and a hint.  Checks never raise, so an unfinished
notebook still runs top to bottom.

Solution notebooks mark the answer with nbgrader's ``### BEGIN SOLUTION`` /
``### END SOLUTION`` lines; ``make_student_version`` (or ``python -m
revlearn.assignments SOLUTION.ipynb EXERCISE.ipynb``) replaces each region with
``raise NotImplementedError()`` and clears the outputs, as ``nbgrader
generate_assignment`` does.
"""
import copy
import json
import math
import sys
from dataclasses import dataclass

import numpy as np
from autograd import grad

from .buffer import BigIntBuffer, InfoBuffer
from .datasets import digits_splits
from .errors import BufferUnderflowError
from .fixedpoint import ExactArray
from .hypergrad import hypergrad_unrolled
from .models import logistic_regression
from .momentum import exact_step, exact_unstep_v, exact_unstep_x
from .rational import to_rational


# ---------------------------------------------------------------------------
# Feedback
# ---------------------------------------------------------------------------

@dataclass
class Feedback:
    """The verdict of a check: ``passed`` and a message for the student.

    Shows as "PASS: ..." or "NOT YET: ..." in a notebook; ``bool(feedback)`` is
    ``passed``, so later cells can write ``if feedback:``.
    """
    passed: bool
    message: str

    def __bool__(self):
        return self.passed

    def __repr__(self):
        return ("PASS: " if self.passed else "NOT YET: ") + self.message

    def _repr_pretty_(self, p, cycle):
        p.text(repr(self))


class _NotYet(Exception):
    """Raised inside a check to stop at the first problem found."""


def _call(fn, name, case, *args):
    """Call the student's ``fn``; turn any exception into specific feedback."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise _NotYet(f"{name} raises NotImplementedError: replace `raise NotImplementedError()` "
                      "with your code.") from None
    except BufferUnderflowError as e:
        raise _NotYet(f"{name} popped more from the buffer than had been pushed ({case}): {e}") \
            from None
    except Exception as e:  # the student's bug, reported rather than crashing the notebook
        raise _NotYet(f"{name} raised {type(e).__name__} on the hidden case {case}: {e}") from None


def _run(check):
    try:
        return Feedback(True, check())
    except _NotYet as e:
        return Feedback(False, str(e))


def _ints(a):
    return "[" + ", ".join(str(int(v)) for v in np.ravel(a)) + "]"


def _units(diff):
    """How far off integer results are, in words: '1 unit in the last bit', ..."""
    m = int(np.max(np.abs(diff)))
    if m == 1:
        return "1 unit in the last bit"
    if m <= 16:
        return f"up to {m} units in the last bits"
    return f"up to {m} units of the last bit"


# ---------------------------------------------------------------------------
# Assignment 1: exact multiplication by n/d and its inverse
# ---------------------------------------------------------------------------

_K = np.array([7, -7, 65535, -65536, 123456789012, -98765432109, 0, 1], dtype=np.int64)


def _reference_mul(k, n, d, buffer):
    E = ExactArray(np.zeros(len(k)), buffer=buffer)
    E.k = np.array(k, dtype=np.int64)
    E.mul(n, d)
    return E.k


def _as_int_array(out, name, k):
    if out is None:
        raise _NotYet(f"{name} returned None: return the new integer array (the buffer is "
                      "changed in place, the integers are returned).")
    a = np.asarray(out)
    if a.shape != k.shape or not np.issubdtype(a.dtype, np.integer):
        raise _NotYet(f"{name} returned an array of dtype {a.dtype} and shape {a.shape}; expected "
                      f"integers of shape {k.shape}, one per parameter. Use integer operations "
                      "(//, %, np.floor_divide, np.mod), never k * n / d.")
    return a.astype(np.int64)


def _mul_hint(k, got, want, n, d, pushed_nothing):
    if pushed_nothing:
        return ("nothing went into the buffer, so the remainder k mod d is lost and div_exact "
                "cannot undo the multiply. Push k mod d in base d first.")
    wrong = got != want
    if (k[wrong] < 0).all():
        return ("it is wrong only for negative k: use floor division and non-negative "
                "remainders (// and %, or np.floor_divide and np.mod), not truncation toward "
                "zero (int(k / d), np.fmod, np.trunc).")
    if np.max(np.abs(got - k * (n / d))) > 2 * n:
        return ("the result is not close to k * n/d. The exact rule is: push(k mod d, base d), "
                "then k = (k div d) * n + pop(base n).")
    return ("the value is close to k * n/d but not bit-identical to the exact rule: "
            "push(k mod d, base d), then k = (k div d) * n + pop(base n) -- push first, and pop "
            "in base n.")


def check_exact_multiply(mul_exact, div_exact):
    """Check a student's ``mul_exact(k, n, d, buffer)`` and ``div_exact(k, n, d, buffer)``.

    ``k`` is an int64 array (fixed-point integers), ``n/d`` the fraction, and
    ``buffer`` an information buffer to ``push``/``pop`` digits; both return
    the new integers.  Hidden cases: single multiplies and divides compared
    with revlearn's ``ExactArray``, then round trips of many steps.
    """
    def check():
        cases = 0
        for beta in (0.9, 0.5, 0.98, 1.0, 0.1):
            n, d = (int(v) for v in to_rational(beta))
            case = f"k = {_ints(_K)}, n/d = {n}/{d}"
            mine, ref = BigIntBuffer(len(_K)), BigIntBuffer(len(_K))
            got = _as_int_array(_call(mul_exact, "mul_exact", case, _K.copy(), n, d, mine),
                                "mul_exact", _K)
            want = _reference_mul(_K, n, d, ref)
            if not (got == want).all():
                raise _NotYet(f"mul_exact is not exact for {case}: got {_ints(got)}, expected "
                              f"{_ints(want)}; {_mul_hint(_K, got, want, n, d, mine.is_empty())}")
            if not all(a == b for a, b in zip(mine.state(), ref.state())):
                raise _NotYet(f"mul_exact returned the right integers for {case} but left "
                              "different digits in the buffer: push k mod d in base d, then pop "
                              "in base n (once each).")
            back = _as_int_array(_call(div_exact, "div_exact", case, want.copy(), n, d, ref),
                                 "div_exact", _K)
            if not (back == _K).all():
                raise _NotYet(f"div_exact does not undo the exact multiply for {case}: got "
                              f"{_ints(back)}, expected {_ints(_K)} (off by {_units(back - _K)}). "
                              "Mirror mul_exact: push(k mod n, base n), then k = (k div n) * d + "
                              "pop(base d).")
            if not ref.is_empty():
                raise _NotYet(f"div_exact recovered k for {case} but left digits in the buffer: "
                              "it must pop, in base d, what mul_exact pushed.")
            cases += 1
        rng = np.random.default_rng(2015)
        for steps, beta in ((3, 0.9), (50, 0.9), (200, 0.98), (20, [0.5, 0.9, 0.98, 0.999])):
            n, d = to_rational(beta)
            n = n if np.ndim(n) else int(n)
            size = 4 if np.ndim(beta) else 100
            k0 = rng.integers(-2 ** 45, 2 ** 45, size=size)
            buf = InfoBuffer(size)
            k = k0.copy()
            case = f"{steps} steps with beta = {beta}"
            for _ in range(steps):
                k = _as_int_array(_call(mul_exact, "mul_exact", case, k, n, d, buf), "mul_exact", k0)
            for _ in range(steps):
                k = _as_int_array(_call(div_exact, "div_exact", case, k, n, d, buf), "div_exact", k0)
            if not (k == k0).all():
                raise _NotYet(f"k_0 not recovered after {steps} multiplies and {steps} divides "
                              f"(beta = {beta}): off by {_units(k - k0)}.")
            if not buf.is_empty():
                raise _NotYet(f"after {steps} multiplies and {steps} divides the buffer is not "
                              "empty: every pop must undo a push.")
            cases += 1
        return (f"all {cases} hidden cases agree with revlearn bit for bit: mul_exact is exact and "
                "div_exact undoes it, also for negative integers and after hundreds of steps.")
    return _run(check)


# ---------------------------------------------------------------------------
# Assignment 2: one exact reverse step of momentum SGD
# ---------------------------------------------------------------------------

def _quadratic_case(seed, size=6):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((size, size))
    H = A @ A.T / size + np.eye(size)
    c = rng.standard_normal(size)
    return (lambda x, t: H @ x - c + 0.1 * np.sin(t) * x), rng.standard_normal(size)


def _logistic_case(seed):
    splits = digits_splits(n_train=60, n_valid=20, seed=seed)
    model = logistic_regression(64, 10)
    gx = grad(lambda x, t: model.loss(x, *splits.train.batch(t, 20, seed=seed)))
    return gx, 0.01 * model.noise(seed)


def _reverse_cases():
    quad, quad_x0 = _quadratic_case(1)
    logi, logi_x0 = _logistic_case(2)
    return [
        ("a 6-D quadratic, 3 steps, alpha = 0.1, beta = 0.9", quad, quad_x0, 3, 0.1, 0.9),
        ("a 6-D quadratic, 40 steps, alpha = 0.05, beta = 0.5", quad, quad_x0, 40, 0.05, 0.5),
        ("logistic regression on digits, 25 steps, alpha = 0.5, beta = 0.98", logi, logi_x0, 25,
         0.5, 0.98),
    ]


def _candidate_mistakes(X, V, gradient, alpha, n, d):
    """What (X.k, V.k) become under some common wrong reverse steps."""
    def run(steps):
        Xc, Vc = copy.deepcopy(X), copy.deepcopy(V)
        try:
            steps(Xc, Vc)
        except Exception:
            return None
        return Xc.k, Vc.k

    b = n / d

    def grad_at_new_x(Xc, Vc):
        g = gradient(Xc.val)
        exact_unstep_x(Xc, Vc, alpha)
        exact_unstep_v(Vc, g, n, d)

    def v_first(Xc, Vc):
        exact_unstep_v(Vc, gradient(Xc.val), n, d)
        exact_unstep_x(Xc, Vc, alpha)

    def divide_then_add(Xc, Vc):
        exact_unstep_x(Xc, Vc, alpha)
        g = gradient(Xc.val)
        Vc.div(n, d)
        Vc.add((1 - b) * g)

    def float_division(Xc, Vc):
        exact_unstep_x(Xc, Vc, alpha)
        Vc.k = Vc.to_fixed((Vc.val + (1 - b) * gradient(Xc.val)) / b)

    def nominal_beta(Xc, Vc):
        exact_unstep_x(Xc, Vc, alpha)
        nominal = round(b, 2)
        Vc.add((1 - nominal) * gradient(Xc.val))
        Vc.div(n, d)

    return {
        "the gradient was evaluated at x_{t+1} instead of at the recovered x_t: undo x first, "
        "then compute g at X.val": run(grad_at_new_x),
        "V was undone before X: X needs the velocity v_{t+1} (still in V), so undo x first": run(v_first),
        "you divided by n/d before adding back (1 - n/d) g: undo the forward operations in "
        "reverse order (forward: multiply, then subtract)": run(divide_then_add),
        "you divided by beta in floating point, which rounds: use V.div(n, d), which divides "
        "exactly using the digits stored in the buffer": run(float_division),
        "(1 - beta) g used the rounded beta instead of the exact fraction n/d: use 1 - n/d, as "
        "the forward step does": run(nominal_beta),
    }


def _step_hint(X, V, X_before, V_before, want_x, want_v, mistakes):
    for hint, result in mistakes.items():
        if result is not None and (X.k == result[0]).all() and (V.k == result[1]).all():
            return hint
    if (X.k == X_before.k).all() and not (X.k == want_x).all():
        return ("X did not change: change it in place with X.sub(...) (rebinding the name X "
                "inside the function does nothing outside it)")
    if not (X.k == want_x).all():
        if np.max(np.abs(X.k - want_x)) <= 2:
            return ("did you round the increment the same way? Subtract exactly the float "
                    "increment the forward step added, alpha * V.val, with X.sub")
        return "x_t = x_{t+1} - alpha v_{t+1}: subtract alpha * V.val from X, before changing V"
    if (V.k == V_before.k).all():
        return "V did not change: undo the velocity update with V.add(...) and V.div(n, d)"
    if np.max(np.abs(V.k - want_v)) <= 4:
        return ("did you add back exactly the same float (1 - n/d) * g as the forward step "
                "subtracted, with g = gradient(X.val) at the recovered x_t?")
    if np.max(np.abs(V.k - want_v)) < 2 ** 20:
        return ("close, but not bit for bit: add back (1 - n/d) * g with V.add, then divide "
                "with V.div(n, d) (floating-point arithmetic on V.val rounds)")
    return ("undo the velocity update: V.add((1 - n/d) * g) with g = gradient(X.val) at the "
            "recovered x_t, then V.div(n, d)")


def check_reverse_step(reverse_step):
    """Check a student's ``reverse_step(X, V, gradient, alpha, n, d)``.

    ``X`` and ``V`` are ``ExactArray``s holding x_{t+1}, v_{t+1}; the function
    must change them in place to x_t, v_t, using ``gradient(x)`` (the gradient
    of iteration t's loss) and beta = n/d.  Hidden cases train forward with
    revlearn's exact step, then reverse with the student's function, comparing
    every recovered state bit for bit.
    """
    def check():
        total = 0
        for case, grad_t, x0, T, alpha, beta in _reverse_cases():
            n, d = (int(v) for v in to_rational(beta))
            X, V = ExactArray(x0), ExactArray(np.zeros_like(x0))
            states = [(X.k.copy(), V.k.copy())]
            for t in range(T):
                exact_step(X, V, grad_t(X.val, t), alpha, n, d)
                states.append((X.k.copy(), V.k.copy()))
            for step, t in enumerate(range(T - 1, -1, -1), start=1):
                def gradient(x, t=t):
                    return grad_t(x, t)
                X_before, V_before = copy.deepcopy(X), copy.deepcopy(V)
                _call(reverse_step, "reverse_step", case, X, V, gradient, alpha, n, d)
                want_x, want_v = states[t]
                if (X.k == want_x).all() and (V.k == want_v).all():
                    continue
                name, diff = ("x", X.k - want_x) if not (X.k == want_x).all() else ("v", V.k - want_v)
                hint = _step_hint(X, V, X_before, V_before, want_x, want_v,
                                  _candidate_mistakes(X_before, V_before, gradient, alpha, n, d))
                first = "" if step == 1 else f" after {step} reverse steps"
                raise _NotYet(f"{name}_{t} not recovered{first} ({case}): off by "
                              f"{_units(diff)} (one unit = 2**-{X.frac_bits}); {hint}.")
            if not V.buffer.is_empty():
                raise _NotYet(f"x_0 and v_0 came back, but the information buffer is not empty "
                              f"({case}): each reverse step must call V.div(n, d) exactly once.")
            total += T
        return (f"{total} reverse steps in 3 hidden cases recover every x_t and v_t bit for bit, "
                "and the information buffer ends empty.")
    return _run(check)


# ---------------------------------------------------------------------------
# Assignment 3: computing and using a hypergradient
# ---------------------------------------------------------------------------

@dataclass
class TuningProblem:
    """A small training run whose step size we tune.

    Logistic regression on 200 digits, ``T`` steps of momentum SGD from
    ``x0`` with minibatches of 50, constant step size alpha = exp(log_alpha)
    and momentum decay ``beta``; the meta-loss is the loss on 200 validation
    digits.  ``train_loss(x, meta, t)`` and ``meta_loss(x, meta)`` are what
    ``revlearn.hypergrad`` takes (``meta`` is unused: pass nothing).
    """
    train_loss: object
    meta_loss: object
    x0: np.ndarray
    T: int
    beta: float


def tuning_problem(T=40, beta=0.9):
    """The ``TuningProblem`` of assignment 3 (deterministic: fixed data split and batches)."""
    splits = digits_splits(n_train=200, n_valid=200, seed=0)
    model = logistic_regression(64, 10)

    def train_loss(x, meta, t):
        return model.loss(x, *splits.train.batch(t, 50, seed=0))

    def meta_loss(x, meta):
        return model.loss(x, splits.valid.inputs, splits.valid.targets)

    return TuningProblem(train_loss, meta_loss, np.zeros(model.n_params), int(T), float(beta))


def _oracle(problem, log_alpha):
    """Validation loss and its derivative with respect to log(alpha), by autograd
    through the unrolled loop (independent of the reversible pass)."""
    alpha = math.exp(log_alpha)
    r = hypergrad_unrolled(problem.train_loss, problem.meta_loss, problem.x0,
                           np.full(problem.T, alpha), np.full(problem.T, problem.beta))
    return r.meta_loss, float(np.sum(r.d_alphas)) * alpha, r.d_alphas


def _close(a, b, rtol=1e-6):
    return abs(a - b) <= rtol * max(abs(b), 1e-12)


def _gradient_hint(got, want, alpha, per_step):
    if _close(got, -want, 1e-5):
        return "it has the wrong sign"
    if _close(got, want / alpha, 1e-5):
        return ("that is d/d(alpha); by the chain rule d/d(log alpha) = alpha * d/d(alpha)")
    if _close(got, float(per_step[0]) * alpha, 1e-5) or _close(got, float(per_step[-1]) * alpha, 1e-5):
        return ("that is the derivative for a single iteration's alpha_t; alpha is shared by all "
                "T iterations, so add up d_alphas over t")
    if _close(got, want / len(per_step), 1e-5):
        return "that is the mean over iterations; the derivative is the sum over t"
    return ("compute it with revlearn.hypergrad on the schedules alphas = exp(log_alpha) "
            "repeated T times and betas = beta repeated T times, then use the chain rule")


def check_hypergradient(hypergradient, problem=None):
    """Check a student's ``hypergradient(log_alpha, problem)`` -> (meta_loss, derivative).

    The derivative is that of the validation loss after training with the
    constant step size exp(log_alpha), with respect to log_alpha.  Hidden
    cases compare with autograd through the unrolled training loop.
    """
    problem = tuning_problem() if problem is None else problem

    def check():
        for log_alpha in (-1.5, 0.5, 2.5):
            case = f"log_alpha = {log_alpha}"
            out = _call(hypergradient, "hypergradient", case, log_alpha, problem)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise _NotYet(f"hypergradient must return two numbers (meta_loss, derivative); "
                              f"for {case} it returned a {type(out).__name__}.")
            if np.size(out[1]) != 1:
                raise _NotYet(f"for {case} the derivative is an array of shape "
                              f"{np.shape(out[1])}, not one number: alpha is shared by all T "
                              "iterations, so add up the per-iteration derivatives d_alphas "
                              "(and apply the chain rule for log alpha).")
            loss, deriv = float(np.ravel(out[0])[0]), float(np.ravel(out[1])[0])
            want_loss, want, per_step = _oracle(problem, log_alpha)
            if not _close(loss, want_loss):
                raise _NotYet(f"for {case} the meta-loss is {loss:.6g}, expected {want_loss:.6g}: "
                              "return the validation loss after training (HypergradResult."
                              "meta_loss).")
            if not _close(deriv, want):
                hint = _gradient_hint(deriv, want, math.exp(log_alpha), per_step)
                raise _NotYet(f"for {case} the derivative is {deriv:.6g}, expected {want:.6g}: "
                              f"{hint}.")
        return ("the validation loss and its derivative with respect to log(alpha) agree with "
                "autograd through the unrolled loop at 3 hidden step sizes.")
    return _run(check)


def check_tuning(tune_log_alpha, problem=None):
    """Check a student's ``tune_log_alpha(log_alpha, problem, steps, meta_lr)``.

    It must do ``steps`` steps of gradient descent on log(alpha) using the
    hypergradient and return the list of visited log_alphas (``steps + 1``
    values, starting with the given one).
    """
    problem = tuning_problem() if problem is None else problem

    def check():
        start, steps, meta_lr = -1.0, 3, 1.5
        case = f"log_alpha = {start}, steps = {steps}, meta_lr = {meta_lr}"
        out = _call(tune_log_alpha, "tune_log_alpha", case, start, problem, steps, meta_lr)
        try:
            path = [float(v) for v in out]
        except TypeError:
            raise _NotYet(f"tune_log_alpha must return the list of visited log_alphas; it "
                          f"returned {out!r:.200}") from None
        if len(path) != steps + 1 or path[0] != start:
            raise _NotYet(f"for {case} expected {steps + 1} values starting with {start} (the "
                          f"start and one per step), got {len(path)}: {[round(p, 4) for p in path]}")
        losses = []
        for i in range(steps):
            loss, deriv, _ = _oracle(problem, path[i])
            losses.append(loss)
            want = path[i] - meta_lr * deriv
            if not _close(path[i + 1], want, 1e-5):
                moved = path[i + 1] - path[i]
                hint = ("you stepped uphill: subtract meta_lr times the derivative"
                        if _close(moved, meta_lr * deriv, 1e-5) else
                        "each step is log_alpha <- log_alpha - meta_lr * derivative, with the "
                        "derivative at the current log_alpha")
                raise _NotYet(f"step {i + 1} of {case} went to {path[i + 1]:.6g}, expected "
                              f"{want:.6g}: {hint}.")
        final = _oracle(problem, path[-1])[0]
        return (f"{steps} meta-steps of gradient descent, each matching the hidden hypergradient; "
                f"validation loss {losses[0]:.4f} -> {final:.4f}.")
    return _run(check)


# ---------------------------------------------------------------------------
# Student versions of solution notebooks (what nbgrader's ClearSolutions does)
# ---------------------------------------------------------------------------

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"


def _source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _is_solution_cell(cell):
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def clear_solution_region(source, cell_type="code"):
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region of a
    cell's source with the stub, indented like the BEGIN line.  Returns
    ``(new_source, replaced)``; raises ValueError on nested or unclosed regions."""
    stub = (CODE_STUB if cell_type == "code" else TEXT_STUB).split("\n")
    out, inside, replaced = [], False, False
    for line in source.split("\n"):
        if line.strip() == BEGIN_SOLUTION:
            if inside:
                raise ValueError("nested '### BEGIN SOLUTION' lines")
            inside = replaced = True
            indent = line[:line.find(BEGIN_SOLUTION)]
            out.extend(indent + s for s in stub)
        elif line.strip() == END_SOLUTION:
            if not inside:
                raise ValueError("'### END SOLUTION' without a '### BEGIN SOLUTION'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("'### BEGIN SOLUTION' without a matching '### END SOLUTION'")
    return "\n".join(out), replaced


def make_student_version(nb):
    """The student version of a solution notebook (a dict in nbformat 4 JSON).

    Like ``nbgrader generate_assignment``: solution regions become the stub
    (``# YOUR CODE HERE`` / ``raise NotImplementedError()``), a solution cell
    without regions becomes the stub entirely, regions outside cells marked as
    nbgrader solution cells are an error, and all outputs and execution counts
    are cleared.  The input is not modified.
    """
    nb = copy.deepcopy(nb)
    nb.get("metadata", {}).pop("widgets", None)
    nb.get("metadata", {}).pop("celltoolbar", None)
    for i, cell in enumerate(nb["cells"]):
        kind = cell["cell_type"]
        if kind not in ("code", "markdown"):
            continue
        new, replaced = clear_solution_region(_source(cell), kind)
        if replaced and not _is_solution_cell(cell):
            raise ValueError(f"cell {i} has a solution region but is not marked as an nbgrader "
                             "solution cell (metadata.nbgrader.solution = true)")
        if _is_solution_cell(cell) and not replaced:
            new = CODE_STUB if kind == "code" else TEXT_STUB
        cell["source"] = new.splitlines(keepends=True)
        if kind == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            for field in ("collapsed", "scrolled", "execution"):
                cell.get("metadata", {}).pop(field, None)
    return nb


def write_student_version(solution_path, exercise_path):
    """Read a solution notebook, write its student version (nbformat's JSON layout)."""
    with open(solution_path, encoding="utf-8") as f:
        nb = json.load(f)
    with open(exercise_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(make_student_version(nb), sort_keys=True, indent=1,
                           ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m revlearn.assignments SOLUTION.ipynb EXERCISE.ipynb")
    write_student_version(sys.argv[1], sys.argv[2])
