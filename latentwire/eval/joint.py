"""Joint two-receiver rescoring: each receiver proposes its greedy answer from the latent; every
receiver scores every proposal teacher-forced from the same latent; the proposal with the lowest
summed per-token NLL wins."""
from __future__ import annotations

import json
import math
from pathlib import Path

from latentwire.data.examples import QAExample
from latentwire.data.loaders import iter_batches
from latentwire.eval.generation import generate_and_score
from latentwire.eval.methods import METHODS, MethodContext
from latentwire.eval.squad_metrics import best_em_f1
from latentwire.prompt import AlignmentError, PromptBuilder


def _proposal_nll(ctx: MethodContext, examples: list[QAExample], proposals: list[str], batch_size: int) -> list[float]:
    """Per-token NLL of each proposal under ctx.receiver reading the latent (inf where unusable)."""
    builder = ctx.builder
    scores: list[float] = []
    for batch in iter_batches(list(range(len(examples))), batch_size):
        prompts = [METHODS["latent"].build(examples[i], ctx) for i in batch]
        ids = []
        for prompt, i in zip(prompts, batch):
            try:
                ids.append(builder.answer_ids(prompt.content, proposals[i]))
            except AlignmentError:  # empty proposal
                ids.append(None)
        usable = [j for j, x in enumerate(ids) if x]
        result = [math.inf] * len(batch)
        if usable:
            out = generate_and_score(ctx.receiver, [prompts[j] for j in usable], [ids[j] for j in usable], 1,
                                     builder.stop_ids, builder.stop_ids[0], ctx.features)
            for j, nll in zip(usable, out.answer_nll):
                result[j] = sum(nll) / len(nll)
        scores.extend(result)
    return scores


def joint_rescoring_row(contexts: dict[str, MethodContext], examples: list[QAExample],
                        predictions: dict[str, dict[str, str]], bits: int, batch_size: int) -> dict:
    """The metrics row of joint rescoring; `predictions` maps receiver -> example id -> its latent answer."""
    names = sorted(contexts)
    totals = {proposer: [0.0] * len(examples) for proposer in names}
    for proposer in names:
        proposals = [predictions[proposer][e.id] for e in examples]
        for scorer in names:
            for i, nll in enumerate(_proposal_nll(contexts[scorer], examples, proposals, batch_size)):
                totals[proposer][i] += nll
    em = f1 = 0.0
    for i, example in enumerate(examples):
        winner = min(names, key=lambda name: totals[name][i])
        e, f = best_em_f1(predictions[winner][example.id], example.answers)
        em, f1 = em + e, f1 + f
    n = len(examples)
    return {"receiver": "+".join(names), "method": "latent_joint", "M": None, "bits": bits, "n": n,
            "em": em / n, "f1": f1 / n}


def joint_row(config, system, examples: list[QAExample], predictions_path: Path) -> dict:
    """Joint rescoring of the receivers' latent answers (read from predictions.jsonl) at the trained bit width."""
    bits = config.wire.bits
    answers: dict[str, dict[str, str]] = {}
    with open(predictions_path) as handle:
        for line in handle:
            record = json.loads(line)
            if record["method"] == "latent" and record["bits"] == bits:
                answers.setdefault(record["receiver"], {})[record["id"]] = record["prediction"]
    contexts = {s.name: MethodContext(system.receivers[s.name],
                                      PromptBuilder(system.receivers[s.name].tokenizer, config.prompt, s.name),
                                      bits=bits, system=system)
                for s in config.receivers}
    return joint_rescoring_row(contexts, examples, answers, bits, config.eval.batch_size)
