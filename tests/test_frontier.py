"""revlearn.frontier: the memory/time comparison of exact reversal, checkpointing and
store-all, measured on tiny problems (shapes, that memory is measured, that the time ratios
are positive; no timing assertions)."""
import math

import autograd.numpy as anp
import numpy as np
import pytest

import revlearn as rl
from revlearn import frontier as fr


def tiny(T):
    return fr.frontier_problem(T, sizes=(6, 4, 3), batch=5, n_examples=20)


def quadratic(T, D=20_000):
    """A problem whose state (2 x 8 x D bytes) dwarfs the fixed overheads."""
    c = np.linspace(-1, 1, D)
    return (lambda x, m, t: 0.5 * anp.sum((x - c) ** 2), lambda x, m: anp.sum(x ** 2),
            np.zeros(D), np.full(T, 0.1), np.full(T, 0.9))


def test_frontier_problem_is_the_bench_problem():
    tl, ml, x0, alphas, betas = fr.frontier_problem(7)
    assert len(x0) == rl.MLP(list(fr.SIZES)).n_params == 1510
    assert alphas.shape == betas.shape == (7,)
    assert fr.state_bytes(x0) == 2 * 8 * 1510


def test_measure_point_measures_every_method():
    rows = fr.measure_point(6, repeats=2, problem=tiny)
    assert set(rows) == set(fr.METHODS)
    tl, ml, x0, alphas, betas = tiny(6)
    exact = rl.hypergrad(tl, ml, x0, alphas, betas)
    for name, r in rows.items():
        assert (r.T, r.method, r.n_params) == (6, name, len(x0))
        assert r.peak_bytes > fr.state_bytes(x0)          # at least the state was allocated
        assert r.time_ratios.shape == r.float_seconds.shape == (2,)
        assert np.all(r.time_ratios > 0) and np.all(r.float_seconds > 0)
        assert r.time_ratio == np.median(r.time_ratios)
        assert r.states == pytest.approx(r.peak_bytes / fr.state_bytes(x0))
    assert rows["exact"].buffer_bytes == pytest.approx(exact.buffer_bits / 8)
    assert rows["exact"].buffer_bytes > 0
    assert rows["checkpointed"].buffer_bytes == rows["store-all"].buffer_bytes == 0


def test_measure_frontier_leaves_out_store_all_beyond_its_limit():
    F = fr.measure_frontier([2, 5, 9], store_all_max_T=5, repeats=1, problem=tiny)
    assert list(F.Ts("exact")) == list(F.Ts("checkpointed")) == [2, 5, 9]
    assert list(F.Ts("store-all")) == [2, 5]
    assert F.peak("exact").shape == F.time_ratio("checkpointed").shape == F.buffer().shape == (3,)
    assert np.all(np.diff(F.buffer()) > 0)                 # the buffer grows with T
    with pytest.raises(ValueError, match="need two values of T"):
        F.slope("store-all", T_from=5)


def test_store_all_memory_grows_linearly_and_checkpointing_more_slowly():
    F = fr.measure_frontier([20, 80], repeats=1, problem=lambda T: quadratic(T, 5000))
    assert F.slope("store-all") > 0.8
    assert F.slope("checkpointed") < 0.75 * F.slope("store-all")


def _fake(peaks):
    """A Frontier from {(T, method): peak bytes}, for the pure functions."""
    one = np.ones(1)
    return fr.Frontier({k: fr.FrontierRow(k[0], k[1], p, one, one, 0.0, 1) for k, p in peaks.items()})


def test_crossover_is_where_the_cheaper_method_stays_cheaper():
    F = _fake({(1, "exact"): 9, (1, "checkpointed"): 5, (10, "exact"): 6, (10, "checkpointed"): 7,
               (100, "exact"): 8, (100, "checkpointed"): 7, (1000, "exact"): 9,
               (1000, "checkpointed"): 20})
    assert F.crossover() == 1000          # below at 10, but not at 100: it must stay below
    assert F.crossover("checkpointed", "exact") is None
    G = _fake({(T, m): (1 if m == "exact" else 2) for T in (3, 30) for m in ("exact", "checkpointed")})
    assert G.crossover() == 3
    H = _fake({(T, "store-all"): 100.0 * T for T in (10, 100, 1000)})
    assert H.slope("store-all") == pytest.approx(1.0)


@pytest.mark.parametrize("T, every, states", [(256, 16, 32), (10, 3, 7), (9, 1, 10), (9, 9, 10),
                                              (100, 10, 20)])
def test_stored_states(T, every, states):
    assert fr.stored_states(T, every) == states


def test_memory_against_every_has_the_t_over_every_plus_every_shape():
    """With D = 20,000 the states dominate: the measured peak, in states, is the model
    ceil(T/every) + every plus a constant (about 9 states in the lead's measurement)."""
    T = 64
    scan = fr.memory_against_every(T, problem=quadratic)
    assert list(scan.everys) == [1, 2, 4, 8, 16, 32, 64]
    assert scan.peak_bytes.shape == (7,) and scan.state_bytes == 16 * 20_000
    assert list(scan.model) == [fr.stored_states(T, e) for e in scan.everys]
    assert scan.best_every == 8 == math.isqrt(T)
    assert 0 < scan.overhead < 20
    assert np.all(np.abs(scan.states - scan.model - scan.overhead) < 5)


def test_default_everys_include_the_square_root():
    scan = fr.memory_against_every(10, problem=tiny)
    assert list(scan.everys) == [1, 2, 4, 8, 10]            # ceil(sqrt(10)) = 4 is a power of 2
    assert list(fr.memory_against_every(12, problem=tiny).everys) == [1, 2, 4, 8, 12]
    assert 5 in fr.memory_against_every(20, problem=tiny).everys


def test_loss_evaluations_count_the_extra_forward_pass():
    counts = fr.loss_evaluations(5, problem=tiny)
    assert counts == {"float training": 1, "store-all": 1, "exact": 2, "checkpointed": 3}


@pytest.mark.parametrize("kwargs, match", [(dict(methods=("exact", "adjoint")), "methods must be"),
                                           (dict(T=0), "T must be"), (dict(T=2.5), "T must be"),
                                           (dict(repeats=0), "repeats must be")])
def test_bad_arguments_are_named(kwargs, match):
    args = {"T": 4, "problem": tiny, **kwargs}
    with pytest.raises(ValueError, match=match):
        fr.measure_point(args.pop("T"), **args)
