"""The columns of an evaluation metrics row: one row per (receiver, method, M, bits), each value a mean
over the row's `n` examples unless said otherwise. The harness writes these columns (and diagnostics
beside them) to rows.jsonl and metrics.json; the benchmarks copy them, in this order, into their JSON.
"""
from __future__ import annotations

IDENTITY_KEYS = ("receiver", "method", "M", "n")
"""Which run the row is: receiver (its short name), method (latentwire.eval.methods.METHODS), M (the
token budget of question + context for budget methods, None otherwise) and n (examples scored)."""

QUALITY_KEYS = ("em", "f1", "firsttok1", "firsttok5", "nll")
"""Answer quality: em and f1 (official SQuAD v1.1 normalisation, max over the gold answers, of the greedy
answer), firsttok1 / firsttok5 (the first gold answer token is in the top 1 / top 5 of the first decoding
step) and nll (teacher-forced NLL per token of the first gold answer, token-weighted over the set)."""

COST_KEYS = ("prompt_tokens", "bytes_utf8", "bytes_zstd", "sec_per_example")
"""What the answer cost: prompt_tokens (receiver positions of the prompt), bytes_utf8 / bytes_zstd (UTF-8
bytes of the text the method sends, and zstd-19 of them; called text_bytes / text_bytes_zstd before) and
sec_per_example (prefill + generation seconds, batched)."""

SETTING_KEYS = ("bits", "sentences", "rate", "k", "regime")
"""A method's setting beside M (None where it has none): bits (latent), sentences (select_*), rate (the rate
asked of llmlingua), k (tokens a position, latent_k / latent_focus), and the regime the row ran in
(question_aware or context_only)."""

WIRE_CODING_KEYS = ("bytes_utf8", "bytes_zstd", "bytes_ids", "bytes_unigram", "bytes_bigram", "bytes_lm")
"""Mean bytes of a text method's message in each wire coding (latentwire.wire.codings; bytes_lm on lm_coded
rows), each with decode_ms_<coding> beside it (median ms to decode it). In the context-only regime the
question's UTF-8 bytes are added to every coding."""

TIME_KEYS = ("receiver_ms", "receiver_ms_p90", "timed_n", "prefix_cached_n", "weights_folded", "sender_ms")
"""receiver_ms / receiver_ms_p90: median / p90 ms from what the receiver holds to its first answer token
(batch 1: prefill and the first step, plus a latent's packet decoding or a receiver-side selection; not
the wire coding's decode_ms) over the first timed_n examples (prefix_cached_n of them with the prompt prefix's
KV cache computed once, eval.prefix_cache; weights_folded: a reader's LoRA folded into the receiver's weights
for the timing, eval.fold_weights); sender_ms: median ms of the sender's work
(selection, pruning, coding, encoding)."""

RENAMED = {"text_bytes": "bytes_utf8", "text_bytes_zstd": "bytes_zstd"}
"""Old column names -> new (results written before the Pareto benchmark)."""

WIRE_KEYS = ("bits", "wire_bytes")
"""bits (latent methods: the wire bit width the packet was sent at) and wire_bytes (what the method sends in
its own coding: a text method's UTF-8 message, lm_coded's lm bytes, a latent's packet plus the question's
UTF-8 bytes when it travels as text)."""

ROW_KEYS = IDENTITY_KEYS + QUALITY_KEYS + COST_KEYS
"""The base columns every method's row has (bench/results/baselines.json)."""

LATENT_KEYS = ROW_KEYS + WIRE_KEYS
"""The base columns and the packet's (bench/results/latent.json)."""


def upgrade_row(row: dict) -> dict:
    """`row` with old column names renamed (a copy; new names win where both exist)."""
    out = dict(row)
    for old, new in RENAMED.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out
