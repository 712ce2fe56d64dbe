"""The benchmark's per-example sender work done ahead, in a process of its own: lm coding and LLMLingua's
pruning of every example, stored in the run's SenderCache, which the evaluation (another process, reading
the same file) then finds instead of computing while its receivers wait."""
from __future__ import annotations

import torch
from tqdm import tqdm

from latentwire.config import Config
from latentwire.data.loaders import load_examples
from latentwire.eval.methods import METHODS, MethodContext
from latentwire.llm.loader import load_receiver
from latentwire.precision import receiver_dtype, resolve_run
from latentwire.prompt import PromptBuilder

SENDER_METHODS = ("lm_coded", "llmlingua")
"""The methods whose sender work is worth a process of its own (seconds an example)."""


def prefill_sender_work(config: Config, peers: dict, methods: list[str], regimes: list[str],
                        progress: bool = True) -> int:
    """Run the sender side of `methods` (each of SENDER_METHODS, at each of config.eval.rates where it has a
    rate) on every example of `config.data` in each of `regimes`, storing the work in `peers`; the number of
    (method, setting, regime) passes made."""
    unknown = sorted(set(methods) - set(SENDER_METHODS))
    if unknown:
        raise ValueError(f"sender-only method(s) {unknown}; allowed: {list(SENDER_METHODS)}")
    if config.eval.threads:
        torch.set_num_threads(config.eval.threads)
    resolve_run(config)
    examples, _ = load_examples(config.data.source, config.data.path, config.data.split, config.data.n,
                                config.data.seed, config.data.max_context_chars)
    spec = config.receivers[0]
    sender = load_receiver(spec.model, spec.name, receiver_dtype(spec, config))
    builder = PromptBuilder(sender.tokenizer, config.prompt, sender.name)
    passes = [(m, rate, regime) for regime in regimes for m in methods if regime in METHODS[m].regimes
              for rate in (config.eval.rates if METHODS[m].setting == "rate" else [0.0])]
    for method, rate, regime in passes:
        ctx = MethodContext(sender, builder, rate=rate, regime=regime, sender=sender, peers=peers)
        for example in tqdm(examples, desc=f"sender {method}{f'@{rate}' if rate else ''} {regime}",
                            disable=not progress):
            METHODS[method].build(example, ctx)
    return len(passes)
