"""F1 against bytes on the wire, per receiver: baselines (text bytes, UTF-8 and zstd) and latents.

    python bench/plot.py        # reads bench/results/{baselines,latent}.json, writes bench/results/f1_vs_bytes.png
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _rows(name: str) -> list[dict]:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else []


def main() -> None:
    baselines, latents = _rows("baselines.json"), _rows("latent.json")
    receivers = sorted({r["receiver"] for r in baselines + latents if "+" not in r["receiver"]})
    figure, axes = plt.subplots(1, len(receivers), figsize=(6 * len(receivers), 4.5), squeeze=False)
    for axis, receiver in zip(axes[0], receivers):
        text = [r for r in baselines if r["receiver"] == receiver and r["method"] in ("text", "token_budget")]
        text.sort(key=lambda r: r["text_bytes"])
        axis.plot([r["text_bytes"] for r in text], [r["f1"] for r in text], "o-", label="text / token budget (UTF-8)")
        axis.plot([r["text_bytes_zstd"] for r in text], [r["f1"] for r in text], "s--", label="same, zstd-19")
        lat = sorted((r for r in latents if r["receiver"] == receiver and r["method"] == "latent"),
                     key=lambda r: r["wire_bytes"])
        if lat:
            axis.plot([r["wire_bytes"] for r in lat], [r["f1"] for r in lat], "^-", label="latent packet")
            for r in lat:
                axis.annotate(f"{r['bits']}b", (r["wire_bytes"], r["f1"]), fontsize=8)
        axis.set_xscale("log")
        axis.set_xlabel("bytes on the wire per example")
        axis.set_ylabel("F1")
        axis.set_title(receiver)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / "f1_vs_bytes.png", dpi=110)
    print(f"wrote {RESULTS / 'f1_vs_bytes.png'}")


if __name__ == "__main__":
    main()
