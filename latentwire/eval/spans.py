"""Evaluation of the span tasks (reconstruction, continuation): the shuffled-latent test on held-out spans."""
from __future__ import annotations

import torch

from latentwire.data.examples import QAExample
from latentwire.data.loaders import iter_batches
from latentwire.train.objective import shuffle_test_bits
from latentwire.wire.packet import packet_size


@torch.no_grad()
def span_shuffle_test(system, examples: list[QAExample], batch_size: int = 8) -> dict[str, dict[str, float]]:
    """Per receiver: mean bits_own / shuffled / none, bits_specific and bits_prior over the spans of
    `examples` (batches of >= 2), plus n, the packet's bytes and bits_specific per packet bit."""
    config = system.config
    items, report = system.task.build_items(examples, system, config, progress=False)
    batches = [b for b in iter_batches(items, batch_size) if len(b) >= 2]
    if not batches:
        raise ValueError(f"no spans to evaluate ({report.as_dict()['skipped']})")
    sums: dict[str, float] = {}
    total = 0
    for batch in batches:
        for key, value in shuffle_test_bits(system, batch).items():
            sums[key] = sums.get(key, 0.0) + value * len(batch)
        total += len(batch)
    wire = packet_size(system.total_slots, config.encoder.d_z, config.wire.bits, config.wire.group_size)
    out: dict[str, dict[str, float]] = {}
    for key, value in sums.items():
        name, metric = key.split("/", 1)
        out.setdefault(name, {"n": total, "wire_bytes": wire})[metric] = value / total
    for row in out.values():
        row["bits_specific_per_packet_bit"] = row["bits_specific"] / (8 * wire)
    return out
