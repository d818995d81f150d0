"""revlearn.evaluation: mean ± sd over unseen seeds, ties, tables."""
import statistics

import numpy as np
import pytest

from revlearn.evaluation import Spread, compare, on_seeds, table


def test_spread_matches_the_statistics_module():
    values = [0.31, 0.27, 0.35, 0.30, 0.29]
    s = Spread(values)
    assert s.n == 5
    assert s.mean == pytest.approx(statistics.mean(values), rel=1e-15)
    assert s.sd == pytest.approx(statistics.stdev(values), rel=1e-14)   # n - 1 denominator
    assert format(s, ".2f") == f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
    assert str(s).endswith("(5 seeds)")
    assert Spread([2.0]).sd == 0.0
    with pytest.raises(ValueError, match="at least one"):
        Spread([])


def test_on_seeds_calls_score_once_per_seed_and_collects_dicts():
    calls = []

    def score(seed):
        calls.append(seed)
        return {"loss": seed / 10, "acc": 1 - seed / 100}

    out = on_seeds(score, range(100, 104), exclude=range(50))
    assert calls == [100, 101, 102, 103]
    assert np.array_equal(out["loss"].values, [10.0, 10.1, 10.2, 10.3])
    assert out["acc"].mean == pytest.approx(1 - 1.015)
    single = on_seeds(lambda s: float(s), [3, 1, 2])
    assert isinstance(single, Spread) and single.mean == 2.0


def test_seeds_used_while_tuning_are_refused():
    with pytest.raises(ValueError, match=r"seeds \[3, 4\] were also used while tuning"):
        on_seeds(lambda s: 0.0, [3, 4, 100], exclude=range(5))
    with pytest.raises(ValueError, match="distinct"):
        on_seeds(lambda s: 0.0, [7, 7])
    with pytest.raises(ValueError, match="empty"):
        on_seeds(lambda s: 0.0, [])
    with pytest.raises(TypeError, match="integers"):
        on_seeds(lambda s: 0.0, [1.5])


def test_score_must_return_numbers_with_the_same_keys():
    with pytest.raises(TypeError, match="one number per seed.*seed 2"):
        on_seeds(lambda s: np.ones(2) if s == 2 else 1.0, [1, 2])
    with pytest.raises(ValueError, match="keys"):
        on_seeds(lambda s: {"a": 1.0} if s == 1 else {"b": 1.0}, [1, 2])


def test_compare_calls_differences_inside_the_spread_a_tie():
    a = Spread([1.0, 1.2, 1.4])        # mean 1.2, sd 0.2
    b = Spread([1.3, 1.35, 1.4])       # mean 1.35, sd 0.05
    c = compare(a, b)
    assert c.difference == pytest.approx(-0.15) and c.spread == pytest.approx(0.2)
    assert c.verdict == "tie" and "tie" in str(c)
    assert c.a_lower_on == 2                      # seeds 1 and 2 (1.0 < 1.3, 1.2 < 1.35)
    far = compare(Spread([0.5, 0.6, 0.7]), b)
    assert far.verdict == "lower" and far.a_lower_on == 3
    assert compare(b, Spread([0.5, 0.6, 0.7])).verdict == "higher"
    assert compare(a, Spread([1.0, 2.0])).a_lower_on is None   # different seeds: no pairing
    assert str(compare(far_a := Spread([0.5, 0.6, 0.7]), b, unit="splits")).endswith("lower on 3 of 3 splits")
    with pytest.raises(TypeError, match="Spreads"):
        compare(1.0, b)


def test_table_lines_up_mean_and_sd():
    rows = {"learned": {"train": Spread([0.1, 0.3]), "test": Spread([0.5, 0.7])},
            "constant": {"train": Spread([0.2, 0.2]), "test": Spread([0.9, 1.1])}}
    text = table(rows, fmt=".2f")
    lines = text.splitlines()
    assert lines[0].split() == ["train", "test"]
    assert lines[1].split() == ["learned", "0.20", "±", "0.14", "0.60", "±", "0.14"]
    assert lines[2].split() == ["constant", "0.20", "±", "0.00", "1.00", "±", "0.14"]
    assert len(set(len(line) for line in lines)) == 1
    assert table(rows, columns=["test"]).splitlines()[0].split() == ["test"]


def test_on_seeds_with_a_progress_bar_scores_every_seed_once(capsys):
    calls = []
    out = on_seeds(lambda s: calls.append(s) or float(s), [5, 6, 7], progress="seeds")
    assert calls == [5, 6, 7] and out.mean == 6.0
    assert "seeds" in capsys.readouterr().err      # tqdm writes its bar to stderr


def _sign_test_by_enumeration(lower, m):
    # every one of the 2^m equally likely coin sequences; count those at least as one-sided
    import itertools
    extreme = abs(2 * lower - m)
    hits = sum(abs(2 * sum(bits) - m) >= extreme for bits in itertools.product((0, 1), repeat=m))
    return hits / 2 ** m


@pytest.mark.parametrize("m", [1, 2, 5, 8, 11])
def test_sign_test_p_matches_counting_every_coin_sequence(m):
    for lower in range(m + 1):
        a = Spread(np.arange(m, dtype=float))
        b = Spread(np.where(np.arange(m) < lower, a.values + 1, a.values - 1))
        c = compare(a, b)
        assert c.a_lower_on == lower and c.ties == 0
        assert c.sign_test_p == pytest.approx(_sign_test_by_enumeration(lower, m), rel=1e-12)


def test_sign_test_leaves_out_tied_seeds_and_needs_pairs():
    a = Spread([1.0, 2.0, 3.0, 4.0, 5.0])
    b = Spread([1.0, 2.0, 4.0, 5.0, 6.0])          # two ties, a lower on the other three
    c = compare(a, b)
    assert (c.a_lower_on, c.ties) == (3, 2)
    assert c.sign_test_p == pytest.approx(_sign_test_by_enumeration(3, 3))   # 0.25, not 5 seeds' 0.375
    assert compare(a, a).sign_test_p == 1.0                   # nothing but ties: no evidence
    assert compare(a, Spread([1.0, 2.0])).sign_test_p is None  # different seeds: no pairing
    # 15 of 20: the textbook value 2 * P(Binomial(20, 1/2) >= 15) = 0.0414
    c20 = compare(Spread(np.zeros(20)), Spread(np.r_[np.ones(15), -np.ones(5)]))
    assert round(c20.sign_test_p, 4) == 0.0414
