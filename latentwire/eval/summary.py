"""Rows derived from an evaluation's predictions: agreement with the text path, the per-example oracle
over receivers."""
from __future__ import annotations

import json
from pathlib import Path


def derived_rows(rows: list[dict], predictions_path: Path) -> list[dict]:
    """`rows` with agree_with_text set on the embedding rows, previous derived rows dropped and the latent
    oracle rows appended."""
    for row in rows:
        if row["method"] not in ("text", "latent_oracle") and row["M"] is None and row.get("bits") is None:
            row["agree_with_text"] = agreement(predictions_path, row["receiver"], row["method"])
    rows = [r for r in rows if r["method"] not in ("latent_oracle", "latent_joint")]
    return rows + oracle_rows(predictions_path, rows)


def oracle_rows(predictions_path: Path, rows: list[dict]) -> list[dict]:
    """Per-example oracle over receivers for each latent bit width: the best EM/F1 any receiver got."""
    best: dict[int, dict[str, list[float]]] = {}
    with open(predictions_path) as handle:
        for line in handle:
            record = json.loads(line)
            if record["method"] == "latent":
                slot = best.setdefault(record["bits"], {}).setdefault(record["id"], [0.0, 0.0])
                slot[0], slot[1] = max(slot[0], record["em"]), max(slot[1], record["f1"])
    out = []
    for bits, per_example in sorted(best.items(), reverse=True):
        receivers = sorted({r["receiver"] for r in rows if r["method"] == "latent" and r.get("bits") == bits})
        if len(receivers) < 2:
            continue
        values = list(per_example.values())
        out.append({"receiver": "+".join(receivers), "method": "latent_oracle", "M": None, "bits": bits,
                    "n": len(values), "em": sum(v[0] for v in values) / len(values),
                    "f1": sum(v[1] for v in values) / len(values)})
    return out


def agreement(predictions_path: Path, receiver: str, method: str, reference: str = "text") -> float | None:
    """Fraction of examples whose generated ids under `method` equal those under `reference`."""
    generated: dict[str, dict[str, list[int]]] = {method: {}, reference: {}}
    with open(predictions_path) as handle:
        for line in handle:
            record = json.loads(line)
            if record["receiver"] == receiver and record["method"] in generated:
                generated[record["method"]][record["id"]] = record["generated_ids"]
    shared = set(generated[method]) & set(generated[reference])
    if not shared:
        return None
    return sum(generated[method][i] == generated[reference][i] for i in shared) / len(shared)
