"""Issue 10: every hostile or careless input raises, warns or is handled; nothing is quietly wrong.

One regression test per reported case, each asserting the exception type and that the
message names the cause and the fix.
"""
import gzip
import sys
import threading
import warnings

import autograd.numpy as anp
import numpy as np
import pytest

import revlearn as rl
from revlearn.errors import CoarseGridWarning
from revlearn.fixedpoint import LIMIT_BITS
from revlearn.hypergrad import exact_reversal
from revlearn.autodiff import train_gradient, train_hvp

from problems import small_mlp_problem, tanh_regression

T = 12
TL, ML, X0 = tanh_regression(4, 0)
ALPHAS, BETAS = np.full(T, 0.3), np.full(T, 0.9)


# ---- 1. threads ------------------------------------------------------------------------

def _mlp_job():
    model, tl, ml, x0, meta = small_mlp_problem(3)
    rng = np.random.default_rng(5)
    alphas = rng.uniform(0.2, 0.5, (40, model.n_groups))
    betas = rng.uniform(0.6, 0.95, (40, model.n_groups))
    return tl, ml, x0, alphas, betas, meta, model.groups


@pytest.mark.parametrize("fn", [rl.hypergrad, rl.hypergrad_unrolled])
def test_threads_get_the_serial_answer_bit_for_bit(fn):
    tl, ml, x0, alphas, betas, meta, groups = _mlp_job()
    want = fn(tl, ml, x0, alphas, betas, meta, groups=groups)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(fn(tl, ml, x0, alphas, betas, meta, groups=groups))
        except Exception as e:  # collected: a failure in a thread must fail the test
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)     # force thread switches inside autograd's tracing
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    assert len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r.d_meta, want.d_meta)
        np.testing.assert_array_equal(r.d_alphas, want.d_alphas)
        np.testing.assert_array_equal(r.d_x0, want.d_x0)


# ---- 2. non-finite outputs -------------------------------------------------------------

def test_a_non_finite_meta_gradient_is_named_not_returned():
    with pytest.raises(FloatingPointError, match="d_meta is not finite"):
        rl.hypergrad(lambda x, m, t: anp.sum(x ** 2), lambda x, m: anp.sum(x ** 2) + anp.sqrt(m),
                     np.ones(3), np.full(5, .1), np.full(5, .9), np.array(0.))


def test_a_schedule_gradient_that_turns_non_finite_names_the_iteration():
    # the training loss's second derivative is infinite at x = 0, reached at t = 3
    def tl(x, m, t):
        return anp.sum(anp.abs(x) ** 1.5)
    with pytest.raises(FloatingPointError, match="not finite"):
        rl.hypergrad(tl, lambda x, m: anp.sum(x ** 2), np.zeros(3), np.full(5, .1),
                     np.full(5, .9))


# ---- 3. coarse grids -------------------------------------------------------------------

def test_a_coarse_grid_warns_with_the_fix_and_the_default_does_not():
    with pytest.warns(CoarseGridWarning, match="frac_bits=48"):
        r = rl.hypergrad(TL, ML, X0, ALPHAS, BETAS, frac_bits=8)
    assert r.rounding_share > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoarseGridWarning)
        r = rl.hypergrad(TL, ML, X0, ALPHAS, BETAS)
    assert r.rounding_share < 1e-9


def test_a_coarse_grid_warning_is_deserved():
    """Where it warns, the exact hypergradient is far from the float one; where not, close."""
    u = rl.hypergrad_unrolled(TL, ML, X0, ALPHAS, BETAS)
    for bits, far in ((8, True), (40, False)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            r = rl.hypergrad(TL, ML, X0, ALPHAS, BETAS, frac_bits=bits)
        err = np.max(np.abs(r.d_alphas - u.d_alphas)) / np.max(np.abs(u.d_alphas))
        assert any(w.category is CoarseGridWarning for w in seen) == far
        assert (err > 1e-3) == far


def test_overflow_advice_never_suggests_a_coarse_grid():
    X = rl.ExactArray(np.ones(2), frac_bits=30)
    with pytest.raises(OverflowError) as info:
        X.add(np.array([1e12, 0.0]))
    assert "frac_bits=22" not in str(info.value) and "keep the values smaller" in str(info.value)
    X = rl.ExactArray(np.ones(2), frac_bits=48)
    with pytest.raises(OverflowError, match="frac_bits=40"):
        X.add(np.array([1e5, 0.0]))


# ---- 4. bad fractions never corrupt the array ---------------------------------------------

@pytest.mark.parametrize("n, d, exc, match", [
    (58982, 65536.0, TypeError, "d must be an integer"),
    (0, 65536, ValueError, "multiplying by 0"),
    (-1, 65536, ValueError, "n must lie in 1.."),
    (5, 0, ValueError, "d must lie in 1.."),
    (5, 1 << 21, ValueError, "bases up to 2\\*\\*20"),
    (True, 2, TypeError, "n must be an integer"),
])
def test_bad_n_or_d_raise_before_touching_k(n, d, exc, match):
    X = rl.ExactArray(np.array([0.3, -1.7, 5.0]))
    k, state = X.k.copy(), X.buffer.state()
    for op in (X.mul, X.div):
        with pytest.raises(exc, match=match):
            op(n, d)
        np.testing.assert_array_equal(X.k, k)
        assert all((a == b).all() for a, b in zip(X.buffer.state(), state))


# ---- 5. the buffer's slack is what the documentation says ----------------------------------

def test_underflow_is_detected_exactly_where_documented():
    X = rl.ExactArray(np.ones(3))
    for _ in range(52):
        X.div(58982, 65536)
    with pytest.raises(rl.BufferUnderflowError):
        X.div(58982, 65536)
    B = rl.InfoBuffer(1)
    for _ in range(8):
        B.pop(2)
    with pytest.raises(rl.BufferUnderflowError):
        B.pop(2)
    with pytest.raises(rl.BufferUnderflowError):
        rl.BigIntBuffer(1).pop(2)


# ---- 7. data splits ------------------------------------------------------------------------

@pytest.mark.parametrize("n_train, n_valid", [(-5, 10), (10, -1), (0, 10), (1797, 0), (2.5, 3)])
def test_bad_split_sizes_are_rejected(n_train, n_valid):
    with pytest.raises(ValueError, match="n_train|n_valid"):
        rl.digits_splits(n_train, n_valid)


# ---- 10. k cannot be changed behind the running bound ------------------------------------

def test_k_is_read_only_and_its_setter_checks_the_range():
    X = rl.ExactArray(np.zeros(2))
    with pytest.raises(ValueError, match="read-only"):
        X.k[0] = 2 ** 63 - 2 ** 50
    with pytest.raises(OverflowError, match="outside the exact fixed-point range"):
        X.k = np.array([2 ** 63 - 2 ** 50, 0])
    X.k = np.array([2 ** 62 - 2 ** 50, 0])     # in range: replaces k and resets the bound
    with pytest.raises(OverflowError):
        X.add(np.array([8.0 * 2 ** 14, 0.0]))
    assert X.k[0] == 2 ** 62 - 2 ** 50         # unchanged, not wrapped
    with pytest.raises(TypeError, match="integer"):
        X.k = None


# ---- 11. MNIST files are validated -------------------------------------------------------

def _idx(path, data, dims, gz=False, declared=None):
    dims = list(dims if declared is None else declared)
    raw = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + \
        np.asarray(data, dtype=np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def _mnist(tmp_path, labels, label_dims=None, gz=False):
    from revlearn.datasets import MNIST_FILES
    n = len(np.ravel(labels))
    ext = ".gz" if gz else ""
    for part in ("train", "test"):
        _idx(tmp_path / (MNIST_FILES[f"{part}_images"] + ext), np.zeros(n * 4), (n, 2, 2), gz)
        _idx(tmp_path / (MNIST_FILES[f"{part}_labels"] + ext), labels,
             label_dims or (n,), gz)
    return tmp_path


def test_mnist_labels_out_of_range_or_of_the_wrong_shape_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="digits 0-9, found 200"):
        rl.load_mnist(_mnist(tmp_path, [1, 200, 3]))
    with pytest.raises(ValueError, match="one label per image"):
        rl.load_mnist(_mnist(tmp_path, [1, 2, 3], label_dims=(3, 1)))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_sizes_are_checked_before_reading(tmp_path, gz):
    from revlearn.datasets import read_idx
    p = tmp_path / ("f.idx" + (".gz" if gz else ""))
    _idx(p, np.zeros(4), (4,), gz, declared=(60000, 28, 28))   # claims far more than it holds
    with pytest.raises(ValueError, match="header says"):
        read_idx(p)
    _idx(p, np.zeros(4), (4,), gz, declared=(2 ** 16, 2 ** 16, 2 ** 16))
    with pytest.raises(ValueError, match="not an MNIST file"):
        read_idx(p)
    _idx(p, np.zeros(6), (6,), gz, declared=(4,))
    with pytest.raises(ValueError, match="more"):
        read_idx(p)


# ---- messages a student understands -------------------------------------------------------

def test_a_reverse_pass_overflow_names_the_iteration_and_the_array():
    run = rl.train_exact(TL, X0, ALPHAS, BETAS)
    X, V = run.state
    X.k = np.full(len(X), -(2 ** 62 - 1))     # tampered: undoing x += alpha v leaves the range
    V.k = np.full(len(V), 2 ** 61)
    hvp = train_hvp(train_gradient(TL, lambda m: None))
    with pytest.raises(OverflowError, match=r"reverse pass at iteration 11.*\(x\)"):
        next(exact_reversal(run, hvp))


def test_finite_but_huge_values_are_out_of_range_not_nan():
    with pytest.raises(OverflowError, match="outside the exact fixed-point range"):
        rl.ExactArray([1e300])
    X = rl.ExactArray([0.0])
    with pytest.raises(OverflowError, match="outside the exact fixed-point range"):
        X.add(np.array([1e294]))
    with pytest.raises(FloatingPointError, match="not finite"):
        X.add(np.array([np.nan]))


def test_div_undoes_mul_at_the_very_bottom_of_the_range():
    X = rl.ExactArray([0.0])
    X.k = np.array([-(2 ** LIMIT_BITS - 1)])
    X.mul(1, 2)
    X.div(1, 2)
    assert X.k[0] == -(2 ** LIMIT_BITS - 1)
    X.k = np.array([-(2 ** LIMIT_BITS - 2)])  # even: the digit is 0, the result would be -2**62
    X.mul(1, 2)
    X.k = np.array([X.k[0] - 1])              # ... one step lower cannot come back
    with pytest.raises(OverflowError):
        X.div(1, 2)


def test_frac_bits_one_advice_does_not_suggest_frac_bits_one():
    X = rl.ExactArray([0.0], frac_bits=1)
    with pytest.raises(OverflowError) as info:
        X.add(np.array([2.0 ** 62]))
    assert "frac_bits=1 " not in str(info.value).replace("(frac_bits=1)", "")


@pytest.mark.parametrize("call, exc, match", [
    (lambda: rl.ExactArray(np.zeros(3)).add(np.zeros(2)), ValueError, "shape"),
    (lambda: rl.ExactArray(np.zeros(3), buffer=rl.InfoBuffer(2)), ValueError, "InfoBuffer\\(3\\)"),
    (lambda: rl.ExactArray(np.zeros(3), buffer=rl.InfoBuffer), TypeError, "buffer instance"),
    (lambda: rl.hypergrad(TL, ML, np.zeros(0), np.full((T, 1), .3), np.full((T, 1), .9),
                          groups=np.zeros(0, int)), ValueError, "x0 is empty"),
    (lambda: rl.hypergrad(lambda x, m, t: TL(x, None, t) * m, ML, X0, ALPHAS, BETAS, -2),
     TypeError, "write e.g. -2.0"),
    (lambda: rl.hypergrad(TL, lambda x, m: anp.sum(x ** 2)[None], X0, ALPHAS, BETAS),
     TypeError, "one real number"),
    (lambda: rl.hypergrad(TL, ML, X0, ALPHAS, BETAS, denominator_bits=None), ValueError,
     "denominator_bits must be an integer"),
    (lambda: rl.hypergrad(TL, ML, X0, ALPHAS, BETAS, buffer=rl.InfoBuffer(4)), TypeError,
     "buffer class"),
    (lambda: rl.hypergrad(TL, ML, X0, ALPHAS, BETAS, frac_bits=None), ValueError,
     "frac_bits must be an integer"),
    (lambda: rl.MLP([64, 10.7]), ValueError, "positive whole numbers"),
    (lambda: rl.MLP([64, 10]).loss(np.zeros(5), np.zeros((2, 64)), np.zeros((2, 10))),
     ValueError, "shape \\(650,\\)"),
    (lambda: rl.hypergrad(TL, ML, X0 + 1j, ALPHAS, BETAS), TypeError, "real numbers"),
    (lambda: rl.hypergrad(TL, ML, X0, np.array(["a"] * T), BETAS), TypeError, "alphas must be real"),
    (lambda: rl.hypergrad(TL, ML, X0, ALPHAS, BETAS, optimizer=rl.Momentum(ALPHAS, BETAS)),
     TypeError, "not both"),
])
def test_raw_errors_became_clear_ones(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_beta_one_is_explained_as_ignoring_the_gradient():
    with pytest.raises(ValueError, match="ignores every new gradient"):
        rl.hypergrad(TL, ML, X0, ALPHAS, np.full(T, 1.5))


def test_a_callback_that_changes_the_state_is_blamed_not_the_loss():
    def meddle(t, X, V):
        if t == 4:
            X.k = X.k + 1
    with pytest.raises(ValueError, match="callback changed the exact training state at "
                                         "iteration 4"):
        rl.hypergrad(TL, ML, X0, ALPHAS, BETAS, callback=meddle)


def test_a_callback_may_read_the_state():
    seen = []
    r = rl.hypergrad(TL, ML, X0, ALPHAS, BETAS, callback=lambda t, X, V: seen.append(X.k.copy()))
    assert r.exact and len(seen) == T


def test_mul_by_more_than_one_lands_within_n_over_d_grid_steps():
    rng = np.random.default_rng(0)
    vals = rng.uniform(-100, 100, 2000)
    X = rl.ExactArray(vals)
    k = X.k.astype(object)
    X.mul(7, 2)
    err = np.abs(np.array([int(a) for a in X.k], dtype=object) * 2 - k * 7)   # in half steps
    assert max(err) <= 7       # |k' - 7k/2| <= 7/2 grid steps = max(1, n/d)
