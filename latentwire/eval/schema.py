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

COST_KEYS = ("prompt_tokens", "text_bytes", "text_bytes_zstd", "sec_per_example")
"""What the answer cost: prompt_tokens (receiver positions of the prompt), text_bytes / text_bytes_zstd
(UTF-8 bytes of question + context, and zstd-19 of them: what sending the text costs) and sec_per_example
(prefill + generation seconds)."""

WIRE_KEYS = ("bits", "wire_bytes")
"""The packet, for latent methods (None for text methods): bits (the wire bit width it was sent at) and
wire_bytes (bytes actually sent: the packet, plus the question's UTF-8 bytes when it travels as text)."""

ROW_KEYS = IDENTITY_KEYS + QUALITY_KEYS + COST_KEYS
"""The base columns every method's row has (bench/results/baselines.json)."""

LATENT_KEYS = ROW_KEYS + WIRE_KEYS
"""The base columns and the packet's (bench/results/latent.json)."""
