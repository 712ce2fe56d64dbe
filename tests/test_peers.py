"""The Pareto benchmark's peers on tiny receivers: what each sends, in which regime, what it costs."""
import pytest

from latentwire.config import PromptConfig, load_config
from latentwire.data.examples import QAExample
from latentwire.data.loaders import load_examples
from latentwire.eval.harness import evaluate
from latentwire.eval.methods import METHODS, MethodContext
from latentwire.sentences import lexical_scores, select_sentences, split_sentences
from latentwire.prompt import PromptBuilder

EXAMPLES, _ = load_examples("squad", n=4, seed=0, max_context_chars=300)
STORY = QAExample("s1", "Where did the cat sleep?", "The dog ran far. The cat slept on the mat. Birds sang.", ("mat",))


def _ctx(receiver, regime="question_aware", **settings):
    builder = PromptBuilder(receiver.tokenizer, PromptConfig(), receiver.name)
    return MethodContext(receiver, builder, regime=regime, sender=receiver, **settings)


@pytest.mark.parametrize("text,expected", [
    ("Mr. Smith went to Washington. He arrived on Jan. 5. The U.S. Army agreed!", 3),
    ("It cost 3.5 dollars. \"Yes,\" he said? (Then) he left.", 3),
    ("no end here", 1), ("", 0)])
def test_split_sentences(text, expected):
    sentences = split_sentences(text)
    assert len(sentences) == expected and all(s and s in text for s in sentences)


def test_selection_keeps_the_best_sentences_in_context_order():
    assert select_sentences(STORY.question, STORY.context, 1, lexical_scores) == "The cat slept on the mat."
    scores = lambda q, s: [0.0, 0.5, 1.0]   # noqa: E731
    assert select_sentences("q", STORY.context, 2, scores) == "The cat slept on the mat. Birds sang."
    assert select_sentences("q", "One. Two.", 3, scores) == "One. Two."


def test_no_context_sends_the_question_alone(receiver):
    for regime in ("question_aware", "context_only"):
        prompt = METHODS["no_context"].build(STORY, _ctx(receiver, regime))
        assert prompt.content == f"Question: {STORY.question}" and "cat slept" not in prompt.message.coded


def test_selection_is_the_senders_or_the_receivers_by_regime(receiver):
    aware = METHODS["select_lexical"].build(STORY, _ctx(receiver, sentences=1))
    assert aware.message.coded == f"{STORY.question}\nThe cat slept on the mat." and aware.message.plain == ""
    blind = METHODS["select_lexical"].build(STORY, _ctx(receiver, "context_only", sentences=1))
    assert blind.content == aware.content                        # the receiver reads the same sentences
    assert blind.message.coded == STORY.context and blind.message.plain == STORY.question   # all crosses
    assert blind.receive().ids == blind.ids                      # the receiver's selection, timed at the receiver


def test_llmlingua_prunes_the_context_on_a_tiny_scorer(receiver):
    long = QAExample("l1", "What is the capital?", " ".join(["Paris is the capital of France and a big city."] * 6),
                     ("Paris",))
    ctx = _ctx(receiver, rate=0.3)
    prompt = METHODS["llmlingua"].build(long, ctx)
    kept = prompt.content.removeprefix("Context: ").split("\nQuestion:")[0]
    assert 0 < len(receiver.tokenizer(kept)["input_ids"]) < len(receiver.tokenizer(long.context)["input_ids"])
    assert prompt.sender_seconds > 0 and ("llmlingua", "l1", 0.3, "question_aware") in ctx.peers
    blind = METHODS["llmlingua"].build(long, _ctx(receiver, "context_only", rate=0.3))
    assert blind.message.plain == long.question


def test_lm_coded_reads_the_exact_text_and_counts_its_bytes(receiver):
    ctx = _ctx(receiver)
    text = METHODS["text"].build(STORY, ctx)
    coded = METHODS["lm_coded"].build(STORY, ctx)
    assert coded.ids == text.ids and coded.exact and coded.coded_bytes["lm"] > 2
    assert coded.decode_seconds["lm"] > 0 and coded.sender_seconds > 0
    blind = METHODS["lm_coded"].build(STORY, _ctx(receiver, "context_only"))
    assert blind.coded_bytes["lm"] > len(STORY.question.encode())   # the question's own bytes are counted


def test_eval_rows_carry_every_coding_timing_and_settings(pair, tmp_path):
    overrides = ["data.n=3", "eval.batch_size=2", "eval.max_new_tokens=3", f"eval.out_dir={tmp_path / 'run'}",
                 "eval.methods=[text,no_context,select_lexical,lm_coded]", "eval.sentences=[1,2]",
                 "eval.timing_n=2", "eval.regime=context_only", "eval.unigram=none.json.gz",
                 "receivers=[{name: a, model: unused}, {name: b, model: unused}]"]
    with pytest.raises(Exception, match="none.json.gz"):   # a missing unigram table is named
        evaluate(load_config(None, overrides), progress=False, receivers=dict(pair))
    rows = evaluate(load_config(None, overrides[:-2] + ["eval.codings=[utf8,zstd,ids]", overrides[-1]]),
                    progress=False, receivers=dict(pair))
    by = {(r["receiver"], r["method"], r["sentences"]): r for r in rows}
    text, floor = by[("a", "text", None)], by[("a", "no_context", None)]
    assert text["regime"] == "context_only" and text["timed_n"] == 2 and text["receiver_ms"] > 0
    assert text["bytes_ids"] < text["bytes_utf8"] and text["bytes_zstd"] < text["bytes_utf8"]
    assert text["wire_bytes"] == text["bytes_utf8"] and text["decode_ms_ids"] >= 0
    assert floor["bytes_utf8"] < text["bytes_utf8"] and floor["prompt_tokens"] < text["prompt_tokens"]
    one = by[("a", "select_lexical", 1)]
    assert one["bytes_utf8"] == text["bytes_utf8"] and one["prompt_tokens"] <= by[("a", "select_lexical", 2)][
        "prompt_tokens"]
    coded = by[("a", "lm_coded", None)]
    assert coded["exact"] == 1.0 and coded["wire_bytes"] == coded["bytes_lm"] and coded["f1"] == text["f1"]
    assert coded["reused"] == 3 and text["reused"] == 0      # the same token ids: answered once
    assert "bytes_unigram" not in text
    from latentwire.eval.harness import memo_from_predictions
    memo = memo_from_predictions(tmp_path / "run" / "predictions.jsonl")     # a later run answers nothing again
    again = evaluate(load_config(None, overrides[:3] + ["eval.methods=[text]", "eval.regime=question_aware",
                                                        f"eval.out_dir={tmp_path / 'again'}", overrides[-1]]),
                     progress=False, receivers=dict(pair), memo=memo)
    assert again[0]["reused"] == 3 and again[0]["f1"] == text["f1"] and again[0]["regime"] == "question_aware"
    assert all(r["M"] is None for r in rows if r["method"] != "latent_oracle")


def test_a_method_outside_its_regime_is_refused():
    with pytest.raises(ValueError, match="token_budget"):
        from latentwire.eval.harness import method_grid
        method_grid(load_config(None, ["eval.methods=[token_budget]", "eval.regime=context_only"]))


def test_a_method_skips_the_settings_another_row_already_reads():
    from latentwire.eval.harness import method_grid

    grid = method_grid(load_config(None, ["eval.methods=[latent_k,latent_focus]", "eval.ks=[1,2,4]"]))
    assert grid == [("latent_k", 1), ("latent_k", 2), ("latent_k", 4), ("latent_focus", 2), ("latent_focus", 4)]
