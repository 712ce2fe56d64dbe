import pytest

from latentwire.config import PromptConfig
from latentwire.data.loaders import load_examples
from latentwire.prompt import AlignmentError, PromptBuilder, PromptError, format_content
from tiny import tiny_tokenizer

CONTENT = format_content("What is the capital?", "Paris is the capital of France.")


def test_segments_cover_the_prompt_and_anchor_is_last():
    builder = PromptBuilder(tiny_tokenizer(), PromptConfig())
    prefix, content, anchor = builder.segment_ids(CONTENT)
    text = builder.tokenizer.decode(prefix + content + anchor)
    assert text == builder.prompt_text(CONTENT) and text.endswith("assistant\nAnswer:")
    assert builder.tokenizer.decode(anchor).startswith("<|im_end|>")


def test_answer_ids_are_the_answer_alone_and_aligned():
    builder = PromptBuilder(tiny_tokenizer(), PromptConfig())
    ids = builder.answer_ids(CONTENT, "Paris")
    joint = builder.prompt_ids(CONTENT) + ids
    assert builder.tokenizer.decode(joint) == builder.prompt_text(CONTENT) + " Paris"
    assert builder.tokenizer.decode(ids[:1]).strip() != ""       # the first answer token is real text
    assert not set(ids) & set(builder.tokenizer.all_special_ids)


def test_misalignment_fails_loudly_naming_model_and_tokens(monkeypatch):
    builder = PromptBuilder(tiny_tokenizer(), PromptConfig(), "tiny-llama")
    real_encode = builder.encode

    def merging_encode(text):  # a tokenizer whose last prompt token merges with the answer
        ids = real_encode(text)
        return ids[:-3] + ids[-1:] if text.endswith(" Paris") else ids

    monkeypatch.setattr(builder, "encode", merging_encode)
    with pytest.raises(AlignmentError, match="tiny-llama: t=0 misalignment") as info:
        builder.answer_ids(CONTENT, "Paris")
    assert "Paris" in str(info.value) and "\n" not in str(info.value)


def test_empty_answer_and_content_are_refused():
    builder = PromptBuilder(tiny_tokenizer(), PromptConfig())
    with pytest.raises(AlignmentError, match="empty answer"):
        builder.answer_ids(CONTENT, "  ")
    with pytest.raises(PromptError, match="empty content"):
        builder.segment_ids("")


def test_bos_policy_is_explicit():
    always = PromptBuilder(tiny_tokenizer(), PromptConfig(bos="always"))
    never = PromptBuilder(tiny_tokenizer(add_bos=True), PromptConfig(bos="never"))
    model = PromptBuilder(tiny_tokenizer(add_bos=True), PromptConfig(bos="model"))
    bos = always.tokenizer.bos_token_id
    assert always.prompt_ids(CONTENT)[0] == bos and always.segment_ids(CONTENT)[0][0] == bos
    assert never.prompt_ids(CONTENT)[0] != bos
    assert model.prompt_ids(CONTENT)[0] == bos
    # the answer split is unchanged by the policy
    assert always.answer_ids(CONTENT, "Paris") == never.answer_ids(CONTENT, "Paris")
    with pytest.raises(PromptError, match="bos"):
        PromptBuilder(tiny_tokenizer(), PromptConfig(bos="sometimes"))


def test_double_bos_is_refused():
    tokenizer = tiny_tokenizer(chat=False)
    with pytest.raises(PromptError, match="double BOS"):
        PromptBuilder(tokenizer, PromptConfig(bos="always", instruction="<|endoftext|>Answer."))


def test_plain_text_prompt_without_chat_template():
    builder = PromptBuilder(tiny_tokenizer(chat=False), PromptConfig())
    assert builder.prompt_text(CONTENT).endswith("\nAnswer:") and not builder.uses_chat_template


@pytest.mark.parametrize("budget", [12, 20, 40])
def test_token_budget_fits(budget):
    builder = PromptBuilder(tiny_tokenizer(), PromptConfig())
    examples, _ = load_examples("squad", n=10, seed=1)
    for e in examples:
        context = builder.truncate_context(e.question, e.context, budget)
        assert e.context.startswith(context[:20]) or context == ""
        n_question = len(builder.encode(format_content(e.question, "")))
        assert len(builder.encode(format_content(e.question, context))) <= max(budget, n_question)


def test_end_id_is_the_token_that_closes_an_assistant_turn():
    chat = PromptBuilder(tiny_tokenizer(), PromptConfig())
    assert chat.tokenizer.convert_ids_to_tokens(chat.end_id) == "<|im_end|>" and chat.end_id in chat.stop_ids
    plain = PromptBuilder(tiny_tokenizer(chat=False), PromptConfig())
    assert plain.end_id == plain.tokenizer.eos_token_id


def test_end_id_falls_back_to_eos_when_the_template_renders_no_assistant_turn():
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' %}{{ raise_exception('no') }}"
                               "{% endif %}{{ m['content'] + '\n' }}{% endfor %}"
                               "{% if add_generation_prompt %}{{ 'A:' }}{% endif %}")
    builder = PromptBuilder(tokenizer, PromptConfig())
    assert builder.uses_chat_template and builder.end_id == tokenizer.eos_token_id


def test_answer_end_without_an_end_token_is_refused_in_one_line():
    from latentwire.config import LossConfig
    from latentwire.data.examples import QAExample
    from latentwire.train.features import build_items
    tokenizer = tiny_tokenizer(chat=False)
    tokenizer.eos_token = None
    builder = PromptBuilder(tokenizer, PromptConfig(), "tiny-noeos")
    assert builder.end_id is None
    example = QAExample("q1", "What is the capital?", "Paris is the capital of France.", ("Paris",))
    with pytest.raises(ValueError, match="tiny-noeos has no end-of-answer token") as info:
        build_items([example], lambda q, c: None, {}, {"a": builder}, LossConfig(answer_end=True, kd_weight=0),
                    progress=False)
    assert "\n" not in str(info.value)
