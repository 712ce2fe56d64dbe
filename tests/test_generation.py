import json

import pytest
import torch
import torch.nn.functional as F

from latentwire.config import PromptConfig, load_config
from latentwire.data.loaders import load_examples
from latentwire.eval.generation import generate_and_score
from latentwire.eval.harness import evaluate
from latentwire.eval.methods import METHODS, MethodContext
from latentwire.prompt import PromptBuilder

EXAMPLES, _ = load_examples("squad", n=6, seed=0, max_context_chars=300)


def _run(receiver, method, examples=EXAMPLES, answers=None, max_new_tokens=6):
    builder = PromptBuilder(receiver.tokenizer, PromptConfig(), receiver.name)
    prompts = [METHODS[method].build(e, MethodContext(receiver, builder, budget=24)) for e in examples]
    answers = answers or [builder.answer_ids(p.content, e.answers[0]) for p, e in zip(prompts, examples)]
    return prompts, answers, generate_and_score(receiver, prompts, answers, max_new_tokens, builder.stop_ids,
                                                receiver.tokenizer.pad_token_id)


def test_embed_raw_reproduces_text(receiver):
    _, _, text = _run(receiver, "text")
    _, _, raw = _run(receiver, "embed_raw")
    assert text.generated == raw.generated and text.first_top5 == raw.first_top5
    assert all(len(g) <= 6 for g in text.generated)
    for a, b in zip(text.answer_nll, raw.answer_nll):
        assert a == pytest.approx(b, abs=1e-4)


def test_left_padding_does_not_change_answers(receiver):
    _, _, batched = _run(receiver, "text")
    for i, example in enumerate(EXAMPLES):
        _, _, alone = _run(receiver, "text", [example])
        assert alone.generated[0] == batched.generated[i]
        assert alone.answer_nll[0] == pytest.approx(batched.answer_nll[i], abs=1e-4)


def test_gold_answer_never_reaches_generation(receiver):
    prompts, answers, first = _run(receiver, "text")
    other = [[receiver.tokenizer.eos_token_id] * 5 for _ in answers]
    _, _, second = _run(receiver, "text", answers=other)
    assert first.generated == second.generated and first.first_top5 == second.first_top5


def test_answer_nll_matches_one_full_forward(receiver):
    prompts, answers, out = _run(receiver, "text")
    for prompt, answer, nll in zip(prompts, answers, out.answer_nll):
        ids = torch.tensor([prompt.ids + answer])
        logits = receiver.model(input_ids=ids).logits[0, len(prompt.ids) - 1:-1]
        expected = F.cross_entropy(logits, torch.tensor(answer), reduction="none")
        assert nll == pytest.approx(expected.tolist(), abs=1e-4)


def test_evaluate_writes_outputs_and_resumes(tmp_path, receiver):
    out = tmp_path / "run"
    overrides = ["data.n=4", "eval.batch_size=3", "eval.max_new_tokens=4", "eval.budgets=[16,32]",
                 f"eval.out_dir={out}", f"receivers=[{{name: {receiver.name}, model: unused}}]"]
    config = load_config(None, overrides)
    rows = evaluate(config, progress=False, receivers={receiver.name: receiver})
    assert [(r["method"], r["M"]) for r in rows] == [("text", None), ("token_budget", 16), ("token_budget", 32),
                                                     ("embed_raw", None), ("embed_anchor", None)]
    by_method = {(r["method"], r["M"]): r for r in rows}
    assert by_method[("embed_raw", None)]["agree_with_text"] == 1.0
    assert by_method[("token_budget", 16)]["prompt_tokens"] < by_method[("text", None)]["prompt_tokens"]
    for row in rows:
        assert row["n"] == 4 and 0 <= row["f1"] <= 1 and row["nll"] > 0 and row["bytes_zstd"] > 0
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 5 * 4
    assert "| text |" in (out / "results.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["n_examples"] == 4
    # a rerun with the same config runs nothing again
    (out / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n")
    again = evaluate(config, progress=False, receivers={receiver.name: receiver})
    assert len(again) == 5 and len((out / "predictions.jsonl").read_text().splitlines()) == 5 * 4


def test_embed_adapter_is_the_anchor_path_with_calibrated_content(receiver):
    from latentwire.adapters import embedding_rms
    anchor_prompts, _, _ = _run(receiver, "embed_anchor", max_new_tokens=1)
    adapter_prompts, _, out = _run(receiver, "embed_adapter", max_new_tokens=2)
    builder = PromptBuilder(receiver.tokenizer, PromptConfig(), receiver.name)
    p, a = len(builder.prefix_ids), len(builder.anchor_ids)
    target = embedding_rms(receiver.model.get_input_embeddings().weight)
    for plain, calibrated in zip(anchor_prompts, adapter_prompts):
        assert plain.embeds.shape == calibrated.embeds.shape
        torch.testing.assert_close(plain.embeds[:p], calibrated.embeds[:p])
        torch.testing.assert_close(plain.embeds[-a:], calibrated.embeds[-a:])
        body, scaled = plain.embeds[p:-a], calibrated.embeds[p:-a]
        assert scaled.pow(2).mean().sqrt().item() == pytest.approx(target, rel=1e-4)
        ratio = (scaled.norm() / body.norm()).item()
        torch.testing.assert_close(scaled, body * ratio, rtol=1e-4, atol=1e-6)
    assert len(out.generated) == len(EXAMPLES)


def test_a_grown_method_grid_keeps_finished_rows_and_another_config_does_not(tmp_path, receiver):
    out = tmp_path / "run"
    base = ["data.n=2", "eval.batch_size=2", "eval.max_new_tokens=2", f"eval.out_dir={out}",
            f"receivers=[{{name: {receiver.name}, model: unused}}]"]
    first = evaluate(load_config(None, base + ["eval.methods=[text]"]), progress=False,
                     receivers={receiver.name: receiver})
    stamp = first[0]["sec_per_example"]
    grown = evaluate(load_config(None, base + ["eval.methods=[text,embed_adapter]"]), progress=False,
                     receivers={receiver.name: receiver})
    assert [r["method"] for r in grown] == ["text", "embed_adapter"] and grown[0]["sec_per_example"] == stamp
    assert grown[1]["agree_with_text"] is not None
    other = evaluate(load_config(None, base + ["eval.methods=[text]", "eval.max_new_tokens=3"]), progress=False,
                     receivers={receiver.name: receiver})
    assert len(other) == 1 and len((out / "predictions.jsonl").read_text().splitlines()) == 2


def test_context_budget_keeps_the_question_and_m_context_tokens(receiver):
    builder = PromptBuilder(receiver.tokenizer, PromptConfig(), receiver.name)
    example = EXAMPLES[0]
    prompt = METHODS["context_budget"].build(example, MethodContext(receiver, builder, budget=5))
    assert prompt.content.endswith(f"\nQuestion: {example.question}")
    context = prompt.content[len("Context: "):-len(f"\nQuestion: {example.question}")]
    assert len(builder.encode(context)) <= 6 and example.context.startswith(context)
    assert prompt.message.coded == f"{example.question}\n{context}" and prompt.message.plain == ""
    assert prompt.text_bytes == len(f"{example.question}\n{example.context}".encode())   # the full text
