import pytest

from latentwire.eval.squad_metrics import best_em_f1, exact_match, f1, normalize_answer


@pytest.mark.parametrize("text, expected", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   apple, a pear ", "apple pear"),
    ("Theory of THE mind.", "theory of mind"),
    ("1,000", "1000"),
])
def test_normalize(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_punctuation_articles():
    assert exact_match("The Broncos.", "broncos") == 1.0
    assert exact_match("Broncos win", "broncos") == 0.0


def test_f1_partial_overlap():
    # pred tokens {denver, broncos, won}, gold {denver, broncos}: P = 2/3, R = 1 -> F1 = 0.8
    assert f1("Denver Broncos won", "the Denver Broncos") == pytest.approx(0.8)
    assert f1("Carolina", "Denver Broncos") == 0.0
    assert f1("", "Denver") == 0.0


def test_best_over_all_gold_answers():
    em, score = best_em_f1("Santa Clara", ["Levi's Stadium", "Santa Clara, California", "Santa Clara"])
    assert em == 1.0 and score == 1.0
    em, score = best_em_f1("in Santa Clara", ["Levi's Stadium", "Santa Clara, California"])
    assert em == 0.0 and score == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
