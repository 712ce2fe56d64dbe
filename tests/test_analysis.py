"""latentwire.eval.analysis: answer regions, F1 by region and the paired bootstrap, on known inputs."""
import random
import statistics

import pytest

from latentwire.eval.analysis import (NOT_IN_CONTEXT, answer_region, answer_token_position, paired_difference,
                                      region_f1, tokens_covered)
from tiny import tiny_tokenizer


class WordTokenizer:
    """A tokenizer of whitespace-separated words, with the offset mapping of a Hugging Face fast tokenizer."""

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        offsets, start = [], 0
        for word in text.split():
            start = text.index(word, start)
            offsets.append((start, start + len(word)))
            start += len(word)
        return {"offset_mapping": offsets}


CONTEXT = "Paris is the capital of France and a big city."


@pytest.mark.parametrize("answers, position", [
    (["France"], 5), (["Paris"], 0), (["capital", "big city"], 3), (["nowhere", "big city"], 8),
    (["is the"], 1), (["nowhere"], None), ([], None),
])
def test_answer_token_position_counts_the_tokens_before_the_earliest_answer(answers, position):
    assert answer_token_position(WordTokenizer(), CONTEXT, answers) == position


def test_answer_token_position_is_the_token_holding_the_answers_first_character():
    tokenizer = tiny_tokenizer()
    context = "The Normans were in Normandy in the 10th and 11th centuries."
    start = context.find("Normandy")
    position = answer_token_position(tokenizer, context, ["Normandy"])
    offsets = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert 0 < position < len(offsets)
    assert offsets[position - 1][0] < start and offsets[position][0] >= start   # BPE may glue the space before


@pytest.mark.parametrize("position, region", [
    (None, NOT_IN_CONTEXT), (0, "tokens 0-20"), (19, "tokens 0-20"), (20, "tokens 20-40"), (39, "tokens 20-40"),
    (40, "tokens 40+"), (500, "tokens 40+"),
])
def test_answer_region_boundaries(position, region):
    assert answer_region(position, 20, 40) == region


def test_tokens_covered_by_a_packet():
    assert tokens_covered(32, 2, "prefix", 0.5) == 64         # keep_ratio only applies to prune
    assert tokens_covered(40, 1, "prune", 0.5) == 80
    assert tokens_covered(20) == 20


PREDICTIONS = [
    {"receiver": "a", "method": "latent", "id": "q1", "f1": 1.0},
    {"receiver": "a", "method": "latent", "id": "q2", "f1": 0.5},
    {"receiver": "a", "method": "latent", "id": "q3", "f1": 0.0},
    {"receiver": "a", "method": "context_budget", "id": "q1", "f1": 0.0},
    {"receiver": "a", "method": "context_budget", "id": "q2", "f1": 0.5},
    {"receiver": "a", "method": "context_budget", "id": "q3", "f1": 0.0},
    {"receiver": "b", "method": "latent", "id": "q1", "f1": 1.0},
    {"receiver": "b", "method": "context_budget", "id": "q1", "f1": 0.0},
    {"receiver": "b", "method": "context_budget", "id": "q2", "f1": 1.0},
]
REGIONS = {("a", "q1"): "tokens 0-20", ("a", "q2"): "tokens 0-20", ("a", "q3"): NOT_IN_CONTEXT,
           ("b", "q1"): "tokens 20-40", ("b", "q2"): "tokens 20-40"}


def test_region_f1_means_per_receiver_method_and_region():
    assert region_f1(PREDICTIONS, REGIONS) == {
        "a/context_budget/answer not in context": {"n": 1, "f1": 0.0},
        "a/context_budget/tokens 0-20": {"n": 2, "f1": 0.25},
        "a/latent/answer not in context": {"n": 1, "f1": 0.0},
        "a/latent/tokens 0-20": {"n": 2, "f1": 0.75},
        "b/context_budget/tokens 20-40": {"n": 2, "f1": 0.5},
        "b/latent/tokens 20-40": {"n": 1, "f1": 1.0},
    }
    assert list(region_f1(PREDICTIONS, REGIONS)) == sorted(region_f1(PREDICTIONS, REGIONS))


def test_paired_difference_on_known_pairs():
    out = paired_difference(PREDICTIONS)
    assert set(out) == {"a"}                                  # b has a single paired question: left out
    a = out["a"]
    assert a["n"] == 3 and a["mean"] == pytest.approx(1 / 3)  # diffs 1, 0, 0
    assert a["se"] == pytest.approx(statistics.stdev([1.0, 0.0, 0.0]) / 3 ** 0.5)
    assert 0.0 <= a["ci95"][0] <= a["mean"] <= a["ci95"][1] <= 1.0
    swapped = paired_difference(PREDICTIONS, method="context_budget", baseline="latent")["a"]
    assert swapped["mean"] == pytest.approx(-1 / 3)


def _many(diffs: list[float]) -> list[dict]:
    out = []
    for i, d in enumerate(diffs):
        out += [{"receiver": "r", "method": "latent", "id": i, "f1": 0.5 + d / 2},
                {"receiver": "r", "method": "context_budget", "id": i, "f1": 0.5 - d / 2}]
    return out


def test_bootstrap_interval_is_seeded_contains_the_mean_and_separates_a_real_gain():
    rng = random.Random(1)
    gain = [rng.uniform(0.2, 0.8) for _ in range(60)]          # a clear gain: the interval excludes 0
    noise = [rng.uniform(-0.5, 0.5) for _ in range(60)]        # no gain: the interval spans 0
    for diffs, excludes_zero in ((gain, True), (noise, False)):
        d = paired_difference(_many(diffs), draws=500)["r"]
        low, high = d["ci95"]
        assert low < d["mean"] < high
        assert (low > 0) == excludes_zero, (low, high)
        assert high - low == pytest.approx(2 * 1.96 * d["se"], rel=0.3)   # about the normal interval
    assert paired_difference(_many(noise), draws=500) == paired_difference(_many(noise), draws=500)
    assert paired_difference(_many(noise), draws=500, seed=1) != paired_difference(_many(noise), draws=500)


def test_bootstrap_resamples_the_differences_with_a_fresh_generator_per_receiver():
    diffs = [0.25, -0.5, 1.0, 0.0, 0.75]
    draws, rng = 200, random.Random(0)
    means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(draws))
    two = _many(diffs) + [{**p, "receiver": "s"} for p in _many(diffs)]
    out = paired_difference(two, draws=draws)
    assert out["r"]["ci95"] == out["s"]["ci95"] == [means[5], means[194]]


def test_the_ratio_of_means_and_its_interval_come_from_the_same_resamples():
    pairs = [(0.5, 1.0), (1.0, 1.0), (0.0, 0.5), (0.75, 0.5)]        # means 0.5625 / 0.75
    predictions = [{"receiver": "r", "method": m, "id": i, "f1": f}
                   for i, (a, b) in enumerate(pairs) for m, f in (("latent", a), ("context_budget", b))]
    d = paired_difference(predictions, draws=300, bar=0.7)["r"]
    assert d["ratio"] == pytest.approx(0.75)
    rng, ratios = random.Random(0), []
    for _ in range(300):
        sample = rng.choices(range(len(pairs)), k=len(pairs))
        ratios.append(sum(pairs[i][0] for i in sample) / sum(pairs[i][1] for i in sample))
    ratios.sort()
    assert d["ratio_ci95"] == pytest.approx([ratios[7], ratios[291]])
    assert d["below_bar"] == pytest.approx(sum(r < 0.7 for r in ratios) / 300)
    assert "below_bar" not in paired_difference(predictions, draws=300)["r"]


def test_the_ratio_is_undefined_where_the_baseline_never_scores():
    predictions = [{"receiver": "r", "method": m, "id": i, "f1": f}
                   for i in range(3) for m, f in (("latent", 1.0), ("context_budget", 0.0))]
    d = paired_difference(predictions, draws=50, bar=0.9)["r"]
    assert d["ratio"] is None and d["ratio_ci95"] is None and "below_bar" not in d


def test_the_paired_driver_compares_rows_of_two_runs_by_method_and_k(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    rows = lambda method, k, f1s: [{"receiver": "a", "method": method, "k": k, "id": str(i), "f1": f}  # noqa: E731
                                   for i, f in enumerate(f1s)]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text("".join(json.dumps(r) + "\n" for r in rows("latent_k", 2, [1, 1, 0]) + rows("text", None, [0] * 3)))
    two.write_text("".join(json.dumps(r) + "\n" for r in rows("latent_k", 2, [0, 0, 0]) + rows("latent_k", 4, [1] * 3)))
    driver = Path(__file__).parents[1] / "bench" / "paired.py"
    out = subprocess.run([sys.executable, driver, f"{one}:latent_k:2", f"{two}:latent_k:2", "--results",
                          tmp_path / "p.json"], capture_output=True, text=True)
    assert out.returncode == 0 and "+0.667" in out.stdout
    assert json.loads((tmp_path / "p.json").read_text())[0]["by_receiver"]["a"]["n"] == 3
    bad = subprocess.run([sys.executable, driver, f"{one}:latent_k:3", f"{two}:latent_k:2"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "no predictions" in bad.stderr
    barred = subprocess.run([sys.executable, driver, f"{one}:latent_k:2", f"{two}:latent_k:4", "--bar", "0.9"],
                            capture_output=True, text=True)
    assert barred.returncode == 0 and "a / b = 0.667" in barred.stdout and "below the bar in " in barred.stdout
    refused = subprocess.run([sys.executable, driver, f"{one}:latent_k:2", f"{two}:latent_k:4", "--bar", "0"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.strip() == "paired.py: --bar must be a ratio above 0, got 0.0"


def test_the_table_driver_prints_rows_or_an_evals_metrics_and_refuses_anything_else_in_one_line(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    row = {"receiver": "a", "method": "latent_k", "k": 2, "n": 3, "f1": 0.25}
    driver = Path(__file__).parents[1] / "bench" / "table.py"
    for name, data in (("rows.json", [row]), ("metrics.json", {"rows": [row], "data": {}})):
        (tmp_path / name).write_text(json.dumps(data))
        out = subprocess.run([sys.executable, driver, tmp_path / name], capture_output=True, text=True)
        assert out.returncode == 0 and "| a | latent_k | 2 | 3 |" in out.stdout and "0.250" in out.stdout
    (tmp_path / "other.json").write_text('{"a": 1}')
    (tmp_path / "broken.json").write_text("{")
    for name in ("other.json", "broken.json", "absent.json"):
        bad = subprocess.run([sys.executable, driver, tmp_path / name], capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr.startswith(f"table.py: {tmp_path / name}: ")
        assert len(bad.stderr.strip().splitlines()) == 1
