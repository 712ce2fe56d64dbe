"""Receiver timing on tiny receivers: the prompt prefix read from a cache computed once gives the same first
answer token as the whole prompt, for token ids, embeddings and under LoRA; features that read the latent
are timed whole."""
import pytest
import torch

from latentwire.config import PromptConfig
from latentwire.eval.generation import greedy_decode
from latentwire.eval.methods import METHODS, MethodContext
from latentwire.eval.prompt_input import PromptInput
from latentwire.eval.timing import PrefixCache, first_token_timing
from latentwire.prompt import PromptBuilder
from test_peers import EXAMPLES


def _prompts(receiver):
    builder = PromptBuilder(receiver.tokenizer, PromptConfig(), receiver.name)
    ctx = MethodContext(receiver, builder)
    return builder, [METHODS[m].build(e, ctx) for e in EXAMPLES[:3] for m in ("text", "embed_raw")]


def _whole(receiver, builder, prompt, features=None):
    return greedy_decode(receiver, [prompt], 1, builder.stop_ids, builder.pad_id, features).first_logits[0]


def test_a_cached_prefix_gives_the_whole_prompts_first_logits(receiver):
    builder, prompts = _prompts(receiver)
    assert any(p.ids is not None for p in prompts) and any(p.embeds is not None for p in prompts)
    cache = PrefixCache(receiver, builder)
    for prompt in prompts + prompts:          # twice: each read leaves the cache at the prefix alone
        assert cache.holds(prompt)
        torch.testing.assert_close(cache.first_logits(prompt), _whole(receiver, builder, prompt),
                                   rtol=1e-4, atol=1e-4)
        assert cache.cache.get_seq_length() == len(builder.prefix_ids)
    seconds, hits = first_token_timing(receiver, builder, prompts, prefix_cache=True)
    assert len(seconds) == len(prompts) and hits == len(prompts) and all(s > 0 for s in seconds)
    assert first_token_timing(receiver, builder, prompts)[1] == 0


def test_a_prompt_without_the_prefix_is_timed_whole(receiver):
    builder, prompts = _prompts(receiver)
    other = PromptInput(prompts[0].content, ids=prompts[0].ids[len(builder.prefix_ids):])
    assert not PrefixCache(receiver, builder).holds(other)
    assert first_token_timing(receiver, builder, [other, prompts[0]], prefix_cache=True)[1] == 1


class _Reads:
    weights_only = False


def test_features_that_read_the_latent_get_no_prefix_cache(receiver):
    builder, prompts = _prompts(receiver)
    with pytest.raises(ValueError, match="only through the weights"):
        PrefixCache(receiver, builder, _Reads())
