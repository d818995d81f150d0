"""Course assignments: checks that tell a student what is wrong with their code.

The course (``course/`` in the repository: an nbgrader course directory, whose
student versions ship in ``notebooks/assignments/``) asks students to write four
pieces of reversible learning themselves:

1. ``mul_exact``/``div_exact``: multiply fixed-point integers by beta = n/d
   exactly, and undo it (``check_mul_exact``, ``check_div_exact``,
   ``check_exact_multiply``);
2. ``reverse_step``: undo one exact step of momentum SGD
   (``check_reverse_step``);
3. ``hypergradient``/``tune_log_alpha``: the derivative of the validation
   loss with respect to log(step size), and gradient descent on it
   (``check_hypergradient``, ``check_tuning``);
4. ``reverse_pass``: the whole reverse pass of exact momentum SGD, the paper's
   Algorithm 2 (``check_reverse_pass`` on a ``ReversePassProblem``).

Each ``check_...`` runs the student's function on test cases, compares the
results with revlearn's engine or with autograd through the unrolled training
loop, and returns a ``Feedback``: "PASS" or "NOT YET" with what is wrong and a
hint.  Common mistakes are recognised by comparing the student's result with
the result of that very mistake.  Checks never raise on anything the student's
function does (raise, return the wrong type, change its inputs): that becomes
NOT YET feedback, so an unfinished notebook still runs and nbgrader's
autograder shows the message.  ``seed=None`` runs the cases a notebook shows;
an integer ``seed`` draws the hidden cases that nbgrader's hidden tests use.
"""
import copy
import dataclasses
import math
from dataclasses import dataclass, field

import autograd.numpy as anp
import numpy as np
from autograd import grad, make_vjp

from .autodiff import LOCK
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
    ``passed``, so later cells can write ``if feedback:`` and autograder tests
    ``assert feedback``.
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


def _exception_hint(e):
    """A sentence on what an exception raised inside a student's function usually means."""
    text = str(e)
    if isinstance(e, ValueError) and "read-only" in text:
        return (" The integers X.k of an ExactArray are read-only, so X.k[...] = ... and "
                "X.k += ... fail: change an ExactArray with its methods (X.sub, V.add, "
                "V.div(n, d)), or assign a whole new integer array (X.k = new_k).")
    if isinstance(e, TypeError) and text.startswith("k must be"):
        return (" ExactArray.k only takes a whole 1-D integer array of the same shape; better "
                "change X and V with their methods (X.sub, V.add, V.div(n, d)).")
    if isinstance(e, FloatingPointError):
        return " Some value became NaN or infinite: print the arrays you compute to find it."
    return ""


def _call(fn, name, case, *args):
    """Call the student's ``fn``; turn any exception into specific feedback."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise _NotYet(f"{name} raises NotImplementedError: replace `raise NotImplementedError` "
                      "with your code.") from None
    except BufferUnderflowError as e:
        raise _NotYet(f"{name} popped more from the buffer than had been pushed ({case}): {e}") \
            from None
    except SystemExit:
        raise _NotYet(f"{name} called exit() or sys.exit() ({case}): return a value "
                      "instead.") from None
    except Exception as e:  # the student's bug, reported rather than crashing the notebook
        raise _NotYet(f"{name} raised {type(e).__name__} on the test case {case}: {e}."
                      f"{_exception_hint(e)}") from None


def _run(check):
    """Run a check body: PASS with its message, or NOT YET with the first problem found.

    Anything else that goes wrong while examining what the student's function
    returned or left behind also becomes NOT YET: a check must never raise."""
    try:
        return Feedback(True, check())
    except _NotYet as e:
        return Feedback(False, str(e))
    except Exception as e:  # noqa: BLE001 -- the promise: feedback, never a crash
        return Feedback(False, f"the check could not finish ({type(e).__name__}: {e}); "
                               "look at what your function returns and what it changes.")


def _count(number, noun, seed):
    """'5 cases', or '8 hidden cases (seed 1502)' for the hidden cases of an nbgrader test."""
    plural = "" if number == 1 else "s"
    if seed is None:
        return f"{number} {noun}{plural}"
    return f"{number} hidden {noun}{plural} (seed {seed})"


def _describe(obj):
    """A short description of a value for feedback: its type, and shape if it has one."""
    if obj is None:
        return "None"
    if isinstance(obj, np.ndarray):
        return f"an array of dtype {obj.dtype} and shape {obj.shape}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    if isinstance(obj, str):
        return f"the string {obj!r:.40}"
    return f"a {type(obj).__name__}"


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


def _real(value, what, case):
    """``value`` as one finite float, or NOT YET saying what it is instead."""
    if value is None or isinstance(value, (str, bytes, dict, bool)):
        raise _NotYet(f"{what} is {_describe(value)} for {case}, not a number.")
    try:
        a = np.asarray(value)
    except Exception:   # noqa: BLE001 -- e.g. ragged sequences
        raise _NotYet(f"{what} is {_describe(value)} for {case}, not a number.") from None
    if a.dtype.kind not in "iuf":
        raise _NotYet(f"{what} is {_describe(value)} for {case}, not a real number.")
    if a.size != 1:
        raise _NotYet(f"{what} is an array of shape {a.shape} for {case}, not one number.")
    x = float(a.reshape(()))
    if not math.isfinite(x):
        raise _NotYet(f"{what} is {x} for {case}: it must be a finite number.")
    return x


def _close(a, b, rtol=1e-6):
    return abs(a - b) <= rtol * max(abs(b), 1e-12)


def _allclose(got, want, rtol=1e-6):
    """Whole arrays agree to ``rtol`` relative to the array's largest entry."""
    scale = max(float(np.max(np.abs(want))) if np.size(want) else 0.0, 1e-12)
    return bool(np.all(np.abs(got - want) <= rtol * scale))


# ---------------------------------------------------------------------------
# Assignment 1: exact multiplication by n/d and its inverse
# ---------------------------------------------------------------------------

_K = np.array([7, -7, 65535, -65536, 123456789012, -98765432109, 0, 1], dtype=np.int64)
_BETAS = (0.9, 0.5, 0.98, 1.0, 0.1)


def _mul_cases(seed):
    """(k, n, d) for single multiplies: the notebook's cases, or hidden ones from ``seed``
    (other denominators too, so that code assuming d = 2**16 fails)."""
    if seed is None:
        return [(_K, *(int(v) for v in to_rational(beta))) for beta in _BETAS]
    rng = np.random.default_rng([1, seed])
    cases = []
    for d in (2 ** 16, 1000, 3 ** 9, 2 ** 20):
        for n in (int(rng.integers(1, d)), d):
            k = np.concatenate([rng.integers(-2 ** 44, 2 ** 44, size=6),
                                [0, 1, -1, d - 1, -d, d + 1, -(d + 1)]]).astype(np.int64)
            cases.append((k, n, d))
    return cases


def _round_trip_cases(seed):
    """(steps, n, d, size) for round trips on an InfoBuffer: n scalar or one per element."""
    if seed is None:
        out = []
        for steps, beta, size in ((3, 0.9, 100), (50, 0.9, 100), (200, 0.98, 100),
                                  (20, [0.5, 0.9, 0.98, 0.999], 4)):
            n, d = to_rational(beta)
            out.append((steps, n if np.ndim(n) else int(n), int(d), size))
        return out
    rng = np.random.default_rng([2, seed])
    return [(int(rng.integers(20, 120)), int(rng.integers(d // 2, d)), d, 50)
            for d in (2 ** 16, 1000)] + \
        [(30, rng.integers(1, 2 ** 12, size=6), 2 ** 12, 6)]


def _reference_mul(k, n, d, buffer):
    """revlearn's exact multiply of the integers k by n/d, with its digits in ``buffer``."""
    E = ExactArray(np.zeros(len(k)), buffer=buffer)
    E.k = np.array(k, dtype=np.int64)
    E.mul(n, d)
    return E.k.copy()


def _as_int_array(out, name, k, case):
    """The student's returned integers, or NOT YET saying what they returned instead."""
    if out is None:
        raise _NotYet(f"{name} returned None ({case}): return the new integer array (the "
                      "buffer is changed in place, the integers are returned).")
    if isinstance(out, tuple):
        raise _NotYet(f"{name} returned a tuple of {len(out)} items ({case}): return only the "
                      "new integer array; the buffer changes in place and need not be "
                      "returned.")
    if not isinstance(out, np.ndarray):
        raise _NotYet(f"{name} returned {_describe(out)} ({case}): return a numpy integer "
                      "array, e.g. (k // d) * n + buffer.pop(n).")
    if out.shape != k.shape:
        raise _NotYet(f"{name} returned an array of shape {out.shape} ({case}); expected "
                      f"shape {k.shape}, one integer per parameter.")
    if not np.issubdtype(out.dtype, np.integer):
        fix = ("use integer operations (//, %, np.floor_divide, np.mod), never k * n / d"
               if out.dtype.kind == "f" else "keep the result an integer numpy array")
        raise _NotYet(f"{name} returned an array of dtype {out.dtype} ({case}); expected "
                      f"integers: {fix}.")
    return out.astype(np.int64)


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
        other = "" if d == 2 ** 16 else (f" This case has d = {d}, not 2**16: use the d you "
                                         "are given, not shifts by 16 bits.")
        return ("the result is not close to k * n/d. The exact rule is: push(k mod d, base d), "
                f"then k = (k div d) * n + pop(base n).{other}")
    return ("the value is close to k * n/d but not bit-identical to the exact rule: "
            "push(k mod d, base d), then k = (k div d) * n + pop(base n) -- push first, and pop "
            "in base n.")


def _check_mul(mul_exact, seed):
    """Single multiplies against revlearn, integers and buffer digits; returns the count."""
    cases = _mul_cases(seed)
    for k, n, d in cases:
        case = f"k = {_ints(k)}, n/d = {n}/{d}"
        mine, ref = BigIntBuffer(len(k)), BigIntBuffer(len(k))
        got = _as_int_array(_call(mul_exact, "mul_exact", case, k.copy(), n, d, mine),
                            "mul_exact", k, case)
        want = _reference_mul(k, n, d, ref)
        if not (got == want).all():
            raise _NotYet(f"mul_exact is not exact for {case}: got {_ints(got)}, expected "
                          f"{_ints(want)}; {_mul_hint(k, got, want, n, d, mine.is_empty())}")
        if not all(a == b for a, b in zip(mine.state(), ref.state())):
            raise _NotYet(f"mul_exact returned the right integers for {case} but left "
                          "different digits in the buffer: push k mod d in base d, then pop "
                          "in base n (once each).")
    return len(cases)


def _check_div(div_exact, seed):
    """Single divides undoing revlearn's multiply; returns the count."""
    cases = _mul_cases(seed)
    for k, n, d in cases:
        case = f"k = {_ints(k)}, n/d = {n}/{d}"
        ref = BigIntBuffer(len(k))
        multiplied = _reference_mul(k, n, d, ref)
        back = _as_int_array(_call(div_exact, "div_exact", case, multiplied.copy(), n, d, ref),
                             "div_exact", k, case)
        if not (back == k).all():
            raise _NotYet(f"div_exact does not undo the exact multiply for {case}: got "
                          f"{_ints(back)}, expected {_ints(k)} (off by {_units(back - k)}). "
                          "Mirror mul_exact: push(k mod n, base n), then k = (k div n) * d + "
                          "pop(base d).")
        if not ref.is_empty():
            raise _NotYet(f"div_exact recovered k for {case} but left digits in the buffer: "
                          "it must pop, in base d, what mul_exact pushed.")
    return len(cases)


def _check_round_trips(mul_exact, div_exact, seed):
    """Many multiplies, then as many divides, on an InfoBuffer; ``mul_exact=None`` uses
    revlearn's multiply (on a BigIntBuffer: with an InfoBuffer, ``ExactArray.mul`` takes its
    low digit from the coder's state, nearly round-to-nearest, not by the paper's rule that
    the students implement).  Returns (number of round trips, longest)."""
    rng = np.random.default_rng([3, 2015 if seed is None else seed])
    cases = _round_trip_cases(seed)
    for steps, n, d, size in cases:
        k0 = rng.integers(-2 ** 45, 2 ** 45, size=size)
        buf = BigIntBuffer(size) if mul_exact is None else InfoBuffer(size)
        k = k0.copy()
        case = f"{steps} steps with n = {n if np.ndim(n) == 0 else _ints(n)}, d = {d}"
        for _ in range(steps):
            if mul_exact is None:
                k = _reference_mul(k, n, d, buf)
            else:
                k = _as_int_array(_call(mul_exact, "mul_exact", case, k, n, d, buf),
                                  "mul_exact", k0, case)
        for _ in range(steps):
            k = _as_int_array(_call(div_exact, "div_exact", case, k, n, d, buf), "div_exact",
                              k0, case)
        if not (k == k0).all():
            raise _NotYet(f"k_0 not recovered after {steps} multiplies and {steps} divides "
                          f"({case}): off by {_units(k - k0)}.")
        if not buf.is_empty():
            raise _NotYet(f"after {steps} multiplies and {steps} divides ({case}) the buffer is "
                          "not empty: every pop must undo a push.")
    return len(cases), max(c[0] for c in cases)


def check_mul_exact(mul_exact, seed=None):
    """Check a student's ``mul_exact(k, n, d, buffer)`` on its own.

    ``k`` is an int64 array (fixed-point integers), ``n/d`` the fraction and
    ``buffer`` an information buffer to ``push``/``pop`` digits; it returns the
    new integers.  Compared bit for bit with revlearn's ``ExactArray.mul``:
    the integers and the digits left in the buffer.
    """
    def check():
        count = _check_mul(mul_exact, seed)
        return (f"mul_exact agrees with revlearn bit for bit in {_count(count, 'case', seed)} "
                "(negative integers, several fractions n/d): the integers and the digits it "
                "leaves in the buffer.")
    return _run(check)


def check_div_exact(div_exact, seed=None):
    """Check a student's ``div_exact(k, n, d, buffer)`` on its own: it must undo revlearn's
    exact multiply, single steps and long runs, and leave the buffer empty."""
    def check():
        count = _check_div(div_exact, seed)
        trips, longest = _check_round_trips(None, div_exact, seed)
        return (f"div_exact undoes revlearn's exact multiply in {_count(count, 'case', seed)} "
                f"and in {trips} runs of up to {longest} steps, leaving the buffer empty.")
    return _run(check)


def check_exact_multiply(mul_exact, div_exact, seed=None):
    """Check ``mul_exact`` and ``div_exact`` together: each on its own (as
    ``check_mul_exact`` and ``check_div_exact``), then round trips of many
    multiplies by the student's ``mul_exact`` undone by their ``div_exact``.
    """
    def check():
        cases = _check_mul(mul_exact, seed) + _check_div(div_exact, seed)
        trips, longest = _check_round_trips(mul_exact, div_exact, seed)
        return (f"all {_count(cases + trips, 'case', seed)} agree with revlearn bit for bit: "
                "mul_exact is exact and div_exact undoes it, also for negative integers and "
                f"after {longest} steps.")
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


def _reverse_cases(seed):
    """(description, gradient(x, t), x0, T, alpha, beta): the notebook's or hidden ones."""
    if seed is None:
        quad, quad_x0 = _quadratic_case(1)
        logi, logi_x0 = _logistic_case(2)
        return [
            ("a 6-D quadratic, 3 steps, alpha = 0.1, beta = 0.9", quad, quad_x0, 3, 0.1, 0.9),
            ("a 6-D quadratic, 40 steps, alpha = 0.05, beta = 0.5", quad, quad_x0, 40, 0.05,
             0.5),
            ("logistic regression on digits, 25 steps, alpha = 0.5, beta = 0.98", logi, logi_x0,
             25, 0.5, 0.98),
        ]
    rng = np.random.default_rng([4, seed])
    size = int(rng.integers(4, 10))
    quad, quad_x0 = _quadratic_case(int(rng.integers(2 ** 31)), size)
    logi, logi_x0 = _logistic_case(int(rng.integers(100)))
    T, alpha, beta = int(rng.integers(10, 30)), round(float(rng.uniform(0.02, 0.15)), 3), \
        float(rng.choice([0.3, 0.7, 0.95]))
    return [
        (f"a {size}-D quadratic, {T} steps, alpha = {alpha}, beta = {beta}", quad, quad_x0, T,
         alpha, beta),
        (f"logistic regression on digits, 15 steps, alpha = 0.3, beta = {beta}", logi, logi_x0,
         15, 0.3, beta),
    ]


def _candidate_mistakes(X, V, gradient, alpha, n, d):
    """What (X.k, V.k) become under some common wrong reverse steps."""
    def run(steps):
        Xc, Vc = copy.deepcopy(X), copy.deepcopy(V)
        try:
            steps(Xc, Vc)
        except Exception:   # noqa: BLE001 -- a mistake that cannot even run matches nothing
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


def _exact_pair(x_k, v_k, buffer):
    """Fresh ExactArrays holding the integers x_k, v_k; V's digits in (a copy of) ``buffer``."""
    X = ExactArray(np.zeros(len(x_k)))
    X.k = x_k
    V = ExactArray(np.zeros(len(v_k)), buffer=copy.deepcopy(buffer))
    V.k = v_k
    return X, V


def _still_exact(X, V, size):
    """NOT YET unless the student left X and V usable ExactArrays of the right size."""
    for name, E in (("X", X), ("V", V)):
        if not isinstance(E, ExactArray) or len(E.k) != size:
            raise _NotYet(f"after reverse_step, {name} is {_describe(E)}: change the ExactArray "
                          "in place with its methods, do not replace its parts.")
        if not callable(getattr(getattr(E, "buffer", None), "is_empty", None)):
            raise _NotYet(f"after reverse_step, {name}.buffer is {_describe(E.buffer)}: leave "
                          "the buffer to V.div(n, d), which takes its digits back.")


def check_reverse_step(reverse_step, part=None, seed=None):
    """Check a student's ``reverse_step(X, V, gradient, alpha, n, d)``.

    ``X`` and ``V`` are ``ExactArray``s holding x_{t+1}, v_{t+1}; the function
    must change them in place to x_t, v_t, using ``gradient(x)`` (the gradient
    of iteration t's loss) and beta = n/d.  Cases train forward with revlearn's
    exact step, then reverse with the student's function, comparing every
    recovered state bit for bit.  ``part="x"`` checks only the weights: every
    step starts from the exact (x_{t+1}, v_{t+1}) and only x_t is compared.
    """
    if part not in (None, "x"):
        raise ValueError(f"part must be None (everything) or 'x', got {part!r}")

    def check():
        total = 0
        cases = _reverse_cases(seed)
        for case, grad_t, x0, T, alpha, beta in cases:
            n, d = (int(v) for v in to_rational(beta))
            X, V = ExactArray(x0), ExactArray(np.zeros_like(x0))
            states, buffers = [(X.k.copy(), V.k.copy())], [copy.deepcopy(V.buffer)]
            for t in range(T):
                exact_step(X, V, grad_t(X.val, t), alpha, n, d)
                states.append((X.k.copy(), V.k.copy()))
                if part == "x":
                    buffers.append(copy.deepcopy(V.buffer))
            for step, t in enumerate(range(T - 1, -1, -1), start=1):
                def gradient(x, t=t):
                    return grad_t(x, t)
                if part == "x":     # every step from the exact state: x_t alone is graded
                    X, V = _exact_pair(*states[t + 1], buffers[t + 1])
                X_before, V_before = copy.deepcopy(X), copy.deepcopy(V)
                _call(reverse_step, "reverse_step", case, X, V, gradient, alpha, n, d)
                _still_exact(X, V, len(x0))
                want_x, want_v = states[t]
                x_ok = (X.k == want_x).all()
                if x_ok and (part == "x" or (V.k == want_v).all()):
                    continue
                name, diff = ("x", X.k - want_x) if not x_ok else ("v", V.k - want_v)
                hint = _step_hint(X, V, X_before, V_before, want_x, want_v,
                                  _candidate_mistakes(X_before, V_before, gradient, alpha, n, d))
                first = "" if step == 1 or part == "x" else f" after {step} reverse steps"
                raise _NotYet(f"{name}_{t} not recovered{first} ({case}): off by "
                              f"{_units(diff)} (one unit = 2**-{X.frac_bits}); {hint}.")
            if part is None and not V.buffer.is_empty():
                raise _NotYet(f"x_0 and v_0 came back, but the information buffer is not empty "
                              f"({case}): each reverse step must call V.div(n, d) exactly once.")
            total += T
        if part == "x":
            return (f"{total} reverse steps in {_count(len(cases), 'case', seed)} recover every "
                    "x_t bit for bit (the velocity is graded by the next test).")
        return (f"{total} reverse steps in {_count(len(cases), 'case', seed)} recover every x_t "
                "and v_t bit for bit, and the information buffer ends empty.")
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


def tuning_problem(T=40, beta=0.9, seed=0):
    """The ``TuningProblem`` of assignment 3 (deterministic: ``seed`` fixes the data split
    and the minibatches)."""
    splits = digits_splits(n_train=200, n_valid=200, seed=seed)
    model = logistic_regression(64, 10)

    def train_loss(x, meta, t):
        return model.loss(x, *splits.train.batch(t, 50, seed=seed))

    def meta_loss(x, meta):
        return model.loss(x, splits.valid.inputs, splits.valid.targets)

    return TuningProblem(train_loss, meta_loss, np.zeros(model.n_params), int(T), float(beta))


def _hidden_tuning_problem(seed):
    return tuning_problem(T=30, beta=0.8, seed=int(np.random.default_rng([5, seed]).integers(100)))


def _copy_problem(problem):
    """A copy the student may change without changing ours (its arrays are copied)."""
    return dataclasses.replace(problem, x0=np.array(problem.x0, dtype=np.float64, copy=True))


def _check_unchanged(mine, pristine, name):
    """NOT YET if the student's function changed the problem it was given."""
    changed = [f.name for f in dataclasses.fields(pristine)
               if not _same(getattr(mine, f.name), getattr(pristine, f.name))]
    if changed:
        raise _NotYet(f"{name} changed problem.{changed[0]}: a function must not change the "
                      "problem it is given (the caller still needs it). Copy an array before "
                      "changing it, e.g. x = problem.x0.copy().")


def _same(a, b):
    if isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    if callable(b):
        return a is b
    return type(a) is type(b) and a == b


def _oracle(problem, log_alpha):
    """Validation loss and its derivative with respect to log(alpha), by autograd
    through the unrolled loop (independent of the reversible pass)."""
    alpha = math.exp(log_alpha)
    r = hypergrad_unrolled(problem.train_loss, problem.meta_loss, problem.x0,
                           np.full(problem.T, alpha), np.full(problem.T, problem.beta))
    return r.meta_loss, float(np.sum(r.d_alphas)) * alpha, r.d_alphas


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


def _loss_and_derivative(out, case):
    """The student's (meta_loss, derivative) as two floats, or NOT YET saying what is wrong."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise _NotYet(f"hypergradient must return two numbers (meta_loss, derivative); "
                      f"for {case} it returned {_describe(out)}.")
    loss, deriv = out
    try:
        size = np.size(deriv) if deriv is not None and not isinstance(deriv, (str, dict)) else 1
    except Exception:   # noqa: BLE001 -- ragged sequences: _real says what it is
        size = 1
    if size != 1:
        raise _NotYet(f"for {case} the derivative is an array of shape "
                      f"{np.shape(deriv)}, not one number: alpha is shared by all T "
                      "iterations, so add up the per-iteration derivatives d_alphas "
                      "(and apply the chain rule for log alpha).")
    return (_real(loss, "the meta-loss (the first value returned)", case),
            _real(deriv, "the derivative (the second value returned)", case))


def check_hypergradient(hypergradient, problem=None, seed=None):
    """Check a student's ``hypergradient(log_alpha, problem)`` -> (meta_loss, derivative).

    The derivative is that of the validation loss after training with the
    constant step size exp(log_alpha), with respect to log_alpha.  Compared
    with autograd through the unrolled training loop; the student's function
    gets a copy of the problem, and changing it is an error.  Without
    ``problem`` the check builds its own (``tuning_problem()``, or a hidden one
    for ``seed``).
    """
    def check():
        if problem is not None:
            pristine = _copy_problem(problem)
        else:
            pristine = tuning_problem() if seed is None else _hidden_tuning_problem(seed)
        if seed is None:
            log_alphas = (-1.5, 0.5, 2.5)
        else:
            rng = np.random.default_rng([6, seed])
            log_alphas = tuple(round(float(v), 3) for v in rng.uniform(-1.5, 2.5, size=3))
        for log_alpha in log_alphas:
            case = f"log_alpha = {log_alpha}"
            mine = _copy_problem(pristine)
            out = _call(hypergradient, "hypergradient", case, log_alpha, mine)
            _check_unchanged(mine, pristine, "hypergradient")
            loss, deriv = _loss_and_derivative(out, case)
            want_loss, want, per_step = _oracle(pristine, log_alpha)
            if not _close(loss, want_loss):
                raise _NotYet(f"for {case} the meta-loss is {loss:.6g}, expected {want_loss:.6g}: "
                              "return the validation loss after training (HypergradResult."
                              "meta_loss).")
            if not _close(deriv, want):
                hint = _gradient_hint(deriv, want, math.exp(log_alpha), per_step)
                raise _NotYet(f"for {case} the derivative is {deriv:.6g}, expected {want:.6g}: "
                              f"{hint}.")
        return ("the validation loss and its derivative with respect to log(alpha) agree with "
                f"autograd through the unrolled loop at "
                f"{_count(len(log_alphas), 'step size', seed)}.")
    return _run(check)


def _path(out, steps, case):
    """The student's list of visited log_alphas as floats, or NOT YET saying what is wrong."""
    if isinstance(out, np.ndarray) and out.ndim == 1:
        out = list(out)
    if not isinstance(out, (list, tuple)):
        raise _NotYet(f"tune_log_alpha must return the list of visited log_alphas; for {case} "
                      f"it returned {_describe(out)}.")
    return [_real(v, f"value {i} of the returned list", case)
            for i, v in enumerate(out)]


def check_tuning(tune_log_alpha, problem=None, seed=None):
    """Check a student's ``tune_log_alpha(log_alpha, problem, steps, meta_lr)``.

    It must do ``steps`` steps of gradient descent on log(alpha) using the
    hypergradient and return the list of visited log_alphas (``steps + 1``
    values, starting with the given one).  The student's function gets a copy
    of the problem; changing it is an error.
    """
    def check():
        if problem is not None:
            pristine = _copy_problem(problem)
        else:
            pristine = tuning_problem() if seed is None else _hidden_tuning_problem(seed)
        if seed is None:
            start, steps, meta_lr = -1.0, 3, 1.5
        else:
            rng = np.random.default_rng([7, seed])
            start, steps, meta_lr = round(float(rng.uniform(-1.5, 0.0)), 3), 2, \
                float(rng.choice([1.0, 2.0]))
        case = f"log_alpha = {start}, steps = {steps}, meta_lr = {meta_lr}"
        mine = _copy_problem(pristine)
        out = _call(tune_log_alpha, "tune_log_alpha", case, start, mine, steps, meta_lr)
        _check_unchanged(mine, pristine, "tune_log_alpha")
        path = _path(out, steps, case)
        if len(path) != steps + 1 or path[0] != start:
            raise _NotYet(f"for {case} expected {steps + 1} values starting with {start} (the "
                          f"start and one per step), got {len(path)}: {[round(p, 4) for p in path]}")
        losses = []
        for i in range(steps):
            loss, deriv, _ = _oracle(pristine, path[i])
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
        final = _oracle(pristine, path[-1])[0]
        hidden = "" if seed is None else f" (a hidden case, seed {seed})"
        return (f"{steps} meta-steps of gradient descent{hidden}, each matching the "
                f"hypergradient; validation loss {losses[0]:.4f} -> {final:.4f}.")
    return _run(check)


# ---------------------------------------------------------------------------
# Assignment 4: the reverse pass (the paper's Algorithm 2)
# ---------------------------------------------------------------------------

@dataclass
class ReversePassProblem:
    """Exact momentum SGD on a small regression, to be run backwards by a student.

    ``N`` parameters in ``G`` groups (``groups[i]`` is parameter i's group,
    think: each layer's weights and biases), trained for ``T`` steps from
    ``x0`` (and v_0 = 0) with one step size and one momentum decay per
    iteration and group: ``alphas[t, g]`` and ``betas[t, g] = numerators[t, g]
    / d`` (exact fractions).  The training loss ``train_loss(x, theta, t)`` is
    a tanh regression on minibatch t plus a per-group L2 penalty
    exp(theta[g]) / 2 * sum x_i**2 over the group's parameters: ``theta``
    (``G`` log-penalties) are the hyperparameters inside the loss.  The
    meta-loss ``valid_loss(x, theta)`` is the loss on held-out data (theta
    unused).  Both are what ``revlearn.hypergrad`` takes.

    Per-parameter values for iteration t: ``alpha(t)``, ``beta(t)``,
    ``numerator(t)`` (what the exact unstep functions take).  ``gradient(x,
    t)`` is g_t = dL/dx, bit for bit the floats of the forward pass;
    ``hvp(x, t, w)`` returns the two Hessian-vector products (d2L/dx2 w,
    d2L/dtheta dx w).  ``train()`` runs the exact forward pass and returns the
    ExactArrays (X, V) holding x_T and v_T; ``meta_gradient(x)`` is df/dx.
    """
    T: int
    alphas: np.ndarray
    numerators: np.ndarray
    d: int
    groups: np.ndarray
    theta: np.ndarray
    x0: np.ndarray
    train_loss: object = field(repr=False)
    valid_loss: object = field(repr=False)

    @property
    def N(self):
        return len(self.groups)

    @property
    def G(self):
        return self.alphas.shape[1]

    @property
    def betas(self):
        """The momentum decays n/d as floats, shape (T, G)."""
        return self.numerators / self.d

    def _t(self, t):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < self.T:
            raise ValueError(f"t must be an iteration number 0..{self.T - 1}, got {t!r}")
        return int(t)

    def _vector(self, a, name):
        a = np.asarray(getattr(a, "val", a))   # an ExactArray means its values
        if a.shape != (self.N,) or a.dtype.kind not in "iuf":
            raise ValueError(f"{name} must be {self.N} real numbers (one per parameter, like "
                             f"X.val), got {_describe(a)}")
        return a.astype(np.float64)

    def alpha(self, t):
        """The step size of iteration t for each parameter, shape (N,)."""
        return self.alphas[self._t(t)][self.groups]

    def numerator(self, t):
        """The integer n of beta_t = n/d for each parameter, shape (N,)."""
        return self.numerators[self._t(t)][self.groups]

    def beta(self, t):
        """The momentum decay n/d of iteration t for each parameter, shape (N,)."""
        return self.numerator(t) / self.d

    def gradient(self, x, t):
        """g_t = dL(x, theta, t)/dx at x (the same floats the forward pass used)."""
        x, t = self._vector(x, "x"), self._t(t)
        with LOCK:
            return np.asarray(grad(self.train_loss, 0)(x, self.theta, t), dtype=np.float64)

    def hvp(self, x, t, w):
        """(d2L/dx2 w, d2L/dtheta dx w) at x for iteration t: the Hessian-vector product
        in x (shape (N,)) and its theta part (shape (G,)), one reverse-over-reverse pass."""
        x, t, w = self._vector(x, "x"), self._t(t), self._vector(w, "w")
        gx = grad(self.train_loss, 0)
        with LOCK:
            vjp, _ = make_vjp(lambda xt: gx(xt[0], xt[1], t))((x, self.theta))
            hx, htheta = vjp(w)
        return np.asarray(hx, dtype=np.float64), np.asarray(htheta, dtype=np.float64)

    def meta_gradient(self, x):
        """df/dx at x, f = valid_loss: where the reverse pass starts (d_x at x_T)."""
        with LOCK:
            return np.asarray(grad(self.valid_loss, 0)(self._vector(x, "x"), self.theta),
                              dtype=np.float64)

    def train(self):
        """The exact forward pass: ExactArrays (X, V) holding x_T and v_T, with V's buffer
        holding the digits the multiplies by beta destroyed."""
        X = ExactArray(self.x0, name="the weights x")
        V = ExactArray(np.zeros_like(self.x0), name="the velocity v")
        for t in range(self.T):
            exact_step(X, V, self.gradient(X.val, t), self.alpha(t), self.numerator(t), self.d)
        return X, V


def reverse_pass_problem(seed=0, T=8, n_groups=2, n_features=8):
    """The ``ReversePassProblem`` of assignment 4 (deterministic for a given ``seed``)."""
    rng = np.random.default_rng([2015, seed])
    N = n_features + 1
    w_true = rng.standard_normal(n_features)
    inputs = rng.standard_normal((80, n_features))
    targets = np.tanh(0.5 * inputs @ w_true) + 0.1 * rng.standard_normal(80)
    train_x, train_y, valid_x, valid_y = inputs[:48], targets[:48], inputs[48:], targets[48:]
    batches = [np.random.default_rng([seed, t]).choice(48, 16, replace=False) for t in range(T)]
    groups = rng.permutation(np.arange(N) % n_groups)
    d = 2 ** 16
    numerators = np.rint(rng.uniform(0.5, 0.95, (T, n_groups)) * d).astype(np.int64)

    def train_loss(x, theta, t):
        A, y = train_x[batches[t]], train_y[batches[t]]
        pred = anp.tanh(anp.dot(A, x[:-1]) + x[-1])
        return anp.mean((pred - y) ** 2) + 0.5 * anp.sum(anp.exp(theta)[groups] * x ** 2)

    def valid_loss(x, theta):
        return anp.mean((anp.tanh(anp.dot(valid_x, x[:-1]) + x[-1]) - valid_y) ** 2)

    return ReversePassProblem(
        T=int(T), alphas=rng.uniform(0.1, 0.4, (T, n_groups)), numerators=numerators, d=d,
        groups=groups, theta=np.log(rng.uniform(0.01, 0.1, n_groups)),
        x0=0.3 * rng.standard_normal(N), train_loss=train_loss, valid_loss=valid_loss)


def _reverse_pass_cases(seed):
    """(description, problem): the notebook's case, or hidden ones from ``seed``."""
    if seed is None:
        return [("the notebook's problem, T = 8, N = 9, G = 2", reverse_pass_problem())]
    rng = np.random.default_rng([8, seed])
    s1, s2 = (int(v) for v in rng.integers(1, 2 ** 31, size=2))
    return [("a hidden problem, T = 12, N = 11, G = 3", reverse_pass_problem(s1, 12, 3, 10)),
            ("a hidden problem, T = 6, N = 7, G = 1", reverse_pass_problem(s2, 6, 1, 6))]


_KEYS = ("d_x0", "d_v0", "d_alphas", "d_betas", "d_theta")
_PARTS = {"state": (), "d_alphas": ("d_alphas",), "d_betas": ("d_betas",),
          "d_x0": ("d_x0", "d_v0"), "d_theta": ("d_theta",)}


def _reverse_with(problem, X, V, d_x, mistake=None):
    """The reverse pass, right (``mistake=None``) or with one named mistake.

    Used to recognise a student's mistake by its result; the right answer
    itself is checked against ``hypergrad_unrolled``.  Returns the gradients
    and the final (X, V)."""
    X, V = copy.deepcopy(X), copy.deepcopy(V)
    T, G, groups = problem.T, problem.G, problem.groups

    def group_sum(products, total):
        """One sum per group (or, the mistake, the total over all parameters in each)."""
        if total:
            return np.full(G, np.sum(products))
        return np.bincount(groups, weights=products, minlength=G)

    def alpha_sum(products):
        return group_sum(products, mistake == "alpha_total")

    def beta_sum(products):
        return group_sum(products, mistake == "beta_total")

    dx, dv = np.array(d_x, dtype=np.float64), np.zeros(problem.N)
    d_alphas, d_betas, d_theta = np.zeros((T, G)), np.zeros((T, G)), np.zeros(G)
    order = range(T) if mistake == "forward_order" else range(T - 1, -1, -1)
    for t in order:
        a, n, b = problem.alpha(t), problem.numerator(t), problem.beta(t)
        v_next, x_next = V.val, X.val
        if mistake not in ("alpha_after_unstep", "alpha_after_dx"):
            d_alphas[t] = alpha_sum(dx * v_next)
        if mistake == "v_first":
            exact_unstep_v(V, problem.gradient(X.val, t), n, problem.d)
            exact_unstep_x(X, V, a)
            g = problem.gradient(X.val, t)
        elif mistake == "gradient_at_x_next":
            g = problem.gradient(X.val, t)
            exact_unstep_x(X, V, a)
            exact_unstep_v(V, g, n, problem.d)
        else:
            exact_unstep_x(X, V, a)
            g = problem.gradient(X.val, t)
            exact_unstep_v(V, g, n, problem.d)
        if mistake == "alpha_after_unstep":
            d_alphas[t] = alpha_sum(dx * V.val)
        if mistake == "beta_before_dv":
            d_betas[t] = beta_sum(dv * (V.val + g))
        if mistake == "scale_before_add":
            dv *= b
        if mistake == "hvp_before_dv_add":
            hx, ht = problem.hvp(X.val, t, (1 - b) * dv)
        dv += a * dx
        if mistake not in ("beta_before_dv", "beta_after_scale"):
            # (using v_{t+1} for v_t is beta_after_scale: v_{t+1} + g_t = beta_t (v_t + g_t))
            gt = {"beta_without_g": 0.0, "beta_minus_g": -g}.get(mistake, g)
            d_betas[t] = beta_sum(dv * (V.val + gt))
        if mistake == "no_one_minus_beta":
            hx, ht = problem.hvp(X.val, t, dv)
        elif mistake == "one_minus_beta_outside":
            hx, ht = problem.hvp(X.val, t, dv)
            hx, ht = (1 - b) * hx, (1 - problem.betas[t]) * ht   # beta is constant in a group
        elif mistake == "hvp_at_x_next":
            hx, ht = problem.hvp(x_next, t, (1 - b) * dv)
        elif mistake != "hvp_before_dv_add":
            hx, ht = problem.hvp(X.val, t, (1 - b) * dv)
        sign = -1.0 if mistake == "hvp_wrong_sign" else 1.0
        dx -= sign * hx
        if mistake == "alpha_after_dx":
            d_alphas[t] = alpha_sum(dx * v_next)
        if mistake == "theta_no_factor":
            ht = problem.hvp(X.val, t, dv)[1]
        if mistake == "theta_assigned":
            d_theta = -ht
        else:
            d_theta -= (-1.0 if mistake in ("hvp_wrong_sign", "theta_wrong_sign") else 1.0) * ht
        if mistake == "beta_after_scale":
            dv *= b
            d_betas[t] = beta_sum(dv * (V.val + g))
        elif mistake not in ("no_dv_scale", "scale_before_add"):
            dv *= b
    grads = {"d_x0": dx, "d_v0": dv, "d_alphas": d_alphas, "d_betas": d_betas,
             "d_theta": d_theta}
    return grads, X, V


# What each mistake is, in the words a student needs (the key names a branch above).
_MISTAKES = {
    "alpha_after_unstep": "d_alphas[t] = dx . v_{t+1} needs the velocity before you undo it: "
                          "read V.val for it before exact_unstep_v (x_{t+1} = x_t + alpha_t "
                          "v_{t+1}, so dx_{t+1}/dalpha_t = v_{t+1})",
    "alpha_after_dx": "d_alphas[t] = dx . v_{t+1} needs dx = df/dx_{t+1}, before the "
                      "Hessian-vector product turns it into df/dx_t: compute d_alphas[t] first "
                      "in each iteration",
    "alpha_total": "d_alphas[t] holds the sum over all parameters in every group: sum the "
                   "products of each group separately, e.g. np.bincount(problem.groups, "
                   "weights=products, minlength=problem.G)",
    "beta_total": "d_betas[t] holds the sum over all parameters in every group: sum the "
                  "products of each group separately, e.g. np.bincount(problem.groups, "
                  "weights=products, minlength=problem.G)",
    "beta_before_dv": "d_betas[t] was read before dv += alpha_t dx: df/dv_{t+1} includes the "
                      "path through x_{t+1} = x_t + alpha_t v_{t+1}, so add alpha_t dx to dv "
                      "first",
    "beta_after_scale": "d_betas[t] is beta_t times too small: it was read after "
                        "dv *= beta_t, or it used v_{t+1} instead of v_t (the same thing, as "
                        "v_{t+1} + g_t = beta_t (v_t + g_t)). Use dv before scaling it, and v_t "
                        "from V after exact_unstep_v",
    "beta_without_g": "v_{t+1} = beta v_t - (1 - beta) g_t, so dv_{t+1}/dbeta_t = v_t + g_t: "
                      "d_betas[t] = dv . (v_t + g_t); you left out g_t",
    "beta_minus_g": "dv_{t+1}/dbeta_t = v_t + g_t (the derivative of -(1 - beta) g_t is +g_t), "
                    "not v_t - g_t",
    "no_one_minus_beta": "the Hessian-vector product misses the factor (1 - beta_t): g_t "
                         "enters v_{t+1} as -(1 - beta_t) g_t, so pass (1 - beta_t) * dv to "
                         "problem.hvp",
    "one_minus_beta_outside": "(1 - beta_t) must multiply dv before the Hessian-vector "
                              "product, not its result: with a different beta per group, "
                              "H ((1 - beta) * dv) differs from (1 - beta) * (H dv). Pass "
                              "(1 - beta_t) * dv to problem.hvp",
    "hvp_wrong_sign": "the Hessian-vector products have the wrong sign: g_t enters v_{t+1} "
                      "with a minus sign, so subtract them: dx -= H w and d_theta -= H_theta w "
                      "with w = (1 - beta_t) dv",
    "theta_wrong_sign": "d_theta has the wrong sign: subtract the theta part of the "
                        "Hessian-vector product, d_theta -= H_theta ((1 - beta_t) dv)",
    "theta_no_factor": "d_theta misses the factor (1 - beta_t): use the theta part of "
                       "problem.hvp(X.val, t, (1 - beta_t) * dv), the same call as for dx",
    "theta_assigned": "d_theta keeps only the last iteration's term (t = 0): every iteration "
                      "adds to it, d_theta -= ...",
    "no_dv_scale": "dv is never multiplied by beta_t: v_{t+1} = beta_t v_t - ..., so "
                   "df/dv_t = beta_t df/dv_{t+1}; end each iteration with dv *= beta_t",
    "scale_before_add": "dv *= beta_t came before dv += alpha_t dx: first add alpha_t dx (that "
                        "makes dv = df/dv_{t+1}), use it, and scale by beta_t last",
    "hvp_before_dv_add": "the Hessian-vector product used dv before dv += alpha_t dx: it "
                         "needs df/dv_{t+1}, which includes alpha_t dx",
    "hvp_at_x_next": "the Hessian-vector product was evaluated at x_{t+1}: evaluate it at the "
                     "recovered x_t, where g_t = gradient(x_t) was computed",
    "v_first": "V was undone before X: exact_unstep_x needs v_{t+1}, which V holds until "
               "exact_unstep_v; undo x first",
    "gradient_at_x_next": "g_t was computed before undoing x: g_t = problem.gradient(X.val, t) "
                          "at the recovered x_t, after exact_unstep_x",
    "forward_order": "the loop ran t = 0, 1, ..., T-1; the reverse pass walks from t = T-1 "
                     "down to 0 (for t in reversed(range(T)))",
}
_STATE_MISTAKES = ("v_first", "gradient_at_x_next", "forward_order")
_GRADIENT_MISTAKES = tuple(m for m in _MISTAKES if m not in _STATE_MISTAKES)


class _ReversePassCase:
    """One hidden problem: the pristine problem, the exact state, and lazily the answers."""

    def __init__(self, description, problem):
        self.description, self.problem = description, problem
        self.X, self.V = problem.train()
        self.d_x = problem.meta_gradient(self.X.val)
        self.x0_k, self.v0_k = ExactArray(problem.x0).k.copy(), np.zeros(problem.N, np.int64)
        self._oracle, self._mistakes = None, {}

    def oracle(self):
        """The right gradients, by autograd through the unrolled loop."""
        if self._oracle is None:
            p = self.problem
            r = hypergrad_unrolled(p.train_loss, p.valid_loss, p.x0, p.alphas, p.betas,
                                   p.theta, groups=p.groups)
            self._oracle = {"d_x0": r.d_x0, "d_v0": r.d_v0, "d_alphas": r.d_alphas,
                            "d_betas": r.d_betas, "d_theta": np.asarray(r.d_meta)}
        return self._oracle

    def mistake(self, name):
        """(gradients, X, V) of the reverse pass with mistake ``name``, or None if it fails."""
        if name not in self._mistakes:
            try:
                self._mistakes[name] = _reverse_with(self.problem, self.X, self.V, self.d_x,
                                                     name)
            except Exception:   # noqa: BLE001 -- a mistake that cannot run matches nothing
                self._mistakes[name] = None
        return self._mistakes[name]


def _student_problem(problem):
    """A copy of the problem for the student's function (arrays copied)."""
    return dataclasses.replace(problem, **{f.name: getattr(problem, f.name).copy()
                                           for f in dataclasses.fields(problem)
                                           if isinstance(getattr(problem, f.name), np.ndarray)})


def _gradients(out, problem, case):
    """The student's returned dict as float arrays of the right shapes, or NOT YET."""
    T, G, N = problem.T, problem.G, problem.N
    keys = ", ".join(f'"{k}"' for k in _KEYS)
    if isinstance(out, (tuple, list)):
        raise _NotYet(f"reverse_pass returned {_describe(out)} ({case}); return a dict with "
                      f"the keys {keys}.")
    if not isinstance(out, dict):
        raise _NotYet(f"reverse_pass returned {_describe(out)} ({case}); return the dict "
                      f"{{{keys}}} (the template's last line).")
    missing = [k for k in _KEYS if k not in out]
    if missing:
        raise _NotYet(f"the dict reverse_pass returned has no key {missing[0]!r} ({case}); it "
                      f"needs {keys}.")
    shapes = {"d_x0": (N,), "d_v0": (N,), "d_alphas": (T, G), "d_betas": (T, G),
              "d_theta": (G,)}
    grads = {}
    for key, shape in shapes.items():
        value = out[key]
        if value is None or isinstance(value, (str, bytes, dict)):
            raise _NotYet(f"{key} is {_describe(value)} ({case}), not an array of numbers of "
                          f"shape {shape}.")
        try:
            a = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise _NotYet(f"{key} is {_describe(value)} ({case}), not an array of numbers of "
                          f"shape {shape}.") from None
        if a.shape != shape:
            hint = ""
            if key in ("d_alphas", "d_betas"):
                if a.shape == (T, N):
                    hint = (" You kept one value per parameter: sum the products of each "
                            "group (np.bincount(problem.groups, weights=..., minlength=G)).")
                elif a.shape == (T,):
                    hint = (" You kept one value per iteration: the schedules have one value "
                            "per iteration and group, so sum each group's products separately.")
            raise _NotYet(f"{key} has shape {a.shape} ({case}); expected {shape}.{hint}")
        if not np.isfinite(a).all():
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise _NotYet(f"{key} is not finite at index {where} ({case}).")
        grads[key] = a
    return grads


def _walked_back(case, X, V):
    """X and V hold x_0 and v_0 bit for bit and V's buffer is empty."""
    N = case.problem.N
    if not (isinstance(X, ExactArray) and isinstance(V, ExactArray) and len(X.k) == N
            and len(V.k) == N and (X.k == case.x0_k).all() and (V.k == case.v0_k).all()):
        return False
    empty = getattr(getattr(V, "buffer", None), "is_empty", None)
    return callable(empty) and empty() is True


def _state_hint(case, X, V):
    """Why the student's loop did not end at (x_0, v_0) with an empty buffer."""
    if not isinstance(X, ExactArray) or not isinstance(V, ExactArray) or \
            len(X.k) != case.problem.N or len(V.k) != case.problem.N:
        return ("X and V must stay ExactArrays of the same size: change them in place with "
                "exact_unstep_x and exact_unstep_v")
    x_ok, v_ok = (X.k == case.x0_k).all(), (V.k == case.v0_k).all()
    if x_ok and v_ok:
        if not callable(getattr(getattr(V, "buffer", None), "is_empty", None)):
            return "V.buffer was replaced: leave the buffer to exact_unstep_v"
        return ("x_0 and v_0 came back, but the information buffer is not empty: call "
                "exact_unstep_v exactly once per iteration")
    if (X.k == case.X.k).all():
        return ("X still holds x_T: undo each iteration's update of x with exact_unstep_x(X, "
                "V, problem.alpha(t))")
    if (V.k == case.V.k).all():
        return ("V still holds v_T: undo each iteration's update of v with exact_unstep_v(V, "
                "g, problem.numerator(t), problem.d)")
    for name in _STATE_MISTAKES:
        result = case.mistake(name)
        if result is not None and (X.k == result[1].k).all() and (V.k == result[2].k).all():
            return _MISTAKES[name]
    return ("each iteration t (from T-1 down to 0) undoes x first, exact_unstep_x(X, V, "
            "problem.alpha(t)), then computes g_t = problem.gradient(X.val, t) and undoes v, "
            "exact_unstep_v(V, g_t, problem.numerator(t), problem.d)")


def _where_wrong(key, got, want, T):
    """Where along the reverse pass an array first goes wrong (it is walked t = T-1 .. 0)."""
    if key not in ("d_alphas", "d_betas"):
        return ""
    scale = max(float(np.max(np.abs(want))), 1e-12)
    bad = [t for t in range(T) if np.any(np.abs(got[t] - want[t]) > 1e-6 * scale)]
    t = max(bad)
    if t == T - 1:
        return f" It is already wrong at t = {T - 1}, the first iteration the reverse pass handles."
    return (f" It is right for t = {T - 1} down to {t + 1} and first wrong at t = {t}: the "
            "formula for one iteration is right, so look at what carries over to the next "
            "one (the updates of dx and dv).")


def _reverse_pass_hint(case, key, got):
    """A specific mistake the student's ``key`` array matches, or None."""
    want = case.oracle()[key]
    if _allclose(got, -want):
        return f"{key} has the wrong sign everywhere"
    for name in _GRADIENT_MISTAKES:
        result = case.mistake(name)
        if result is not None and not _allclose(result[0][key], want) and \
                _allclose(got, result[0][key]):
            return _MISTAKES[name]
    return None


def check_reverse_pass(reverse_pass, part=None, seed=None):
    """Check a student's ``reverse_pass(X, V, problem, d_x)`` -> dict of hypergradients.

    ``X``, ``V`` hold x_T and v_T after ``problem.train()``; ``d_x`` is the
    meta-gradient at x_T.  The function must walk training back to (x_0, v_0)
    with ``exact_unstep_x``/``exact_unstep_v`` and return ``{"d_x0", "d_v0",
    "d_alphas", "d_betas", "d_theta"}``.  Compared with autograd through the
    unrolled loop (``hypergrad_unrolled``); common mistakes are recognised by
    comparing with the result of that mistake.  ``part`` grades one piece:
    ``"state"`` (the walk back is exact and empties the buffer), ``"d_alphas"``,
    ``"d_betas"``, ``"d_x0"`` (with ``d_v0``) or ``"d_theta"``; None checks all.
    """
    if part not in (None, *_PARTS):
        raise ValueError(f"part must be None or one of {', '.join(_PARTS)}, got {part!r}")

    def check():
        cases = [_ReversePassCase(*c) for c in _reverse_pass_cases(seed)]
        keys = _KEYS if part is None else _PARTS[part]
        for case in cases:
            what = case.description
            X, V = copy.deepcopy(case.X), copy.deepcopy(case.V)
            mine = _student_problem(case.problem)
            out = _call(reverse_pass, "reverse_pass", what, X, V, mine, case.d_x.copy())
            changed = [f.name for f in dataclasses.fields(mine)
                       if not _same(getattr(mine, f.name), getattr(case.problem, f.name))]
            if changed:
                raise _NotYet(f"reverse_pass changed problem.{changed[0]} ({what}): "
                              "it must not change the problem it is given. Copy an array "
                              "before changing it.")
            grads = _gradients(out, case.problem, what) if keys else None
            if not _walked_back(case, X, V):
                first = "" if part == "state" else (
                    "the hypergradients can only be right once the loop walks training back "
                    "exactly, and it does not yet: ")
                raise _NotYet(f"{first}after your loop, X and V do not hold x_0 and v_0 "
                              f"bit for bit ({what}): {_state_hint(case, X, V)}.")
            for key in keys:
                want = case.oracle()[key]
                if _allclose(grads[key], want):
                    continue
                hint = _reverse_pass_hint(case, key, grads[key])
                where = _where_wrong(key, grads[key], want, case.problem.T)
                detail = (f"{hint}." if hint else
                          "compare each line of your loop with the recursion above." + where)
                raise _NotYet(f"{key} does not match autograd through the unrolled loop "
                              f"({what}): {detail}")
        n = _count(len(cases), "case", seed)
        if part == "state":
            return (f"your loop walks training back to x_0 and v_0 bit for bit and empties the "
                    f"information buffer, in {n}.")
        if part is None:
            return (f"the walk back is exact and d_x0, d_v0, d_alphas, d_betas and d_theta all "
                    f"agree with autograd through the unrolled loop, in {n}.")
        every = " (every iteration and group)" if part in ("d_alphas", "d_betas") else ""
        return (f"{' and '.join(keys)} agree{'s' if len(keys) == 1 else ''} with autograd "
                f"through the unrolled loop{every}, in {n}.")
    return _run(check)
