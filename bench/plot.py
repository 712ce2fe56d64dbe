"""F1 against wire bytes and against receiver time, per receiver and regime, with the Pareto front.

    python bench/plot.py     # reads bench/results/pareto.json, writes bench/results/f1_vs_bytes.png, f1_vs_time.png

Every method is a labelled series (one colour; its settings joined by a line per coding, one marker per
coding); points on the front (latentwire.eval.pareto: bytes, time and F1 together) are ringed, and the front's
projection is drawn as a staircase.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

RESULTS = Path(__file__).parent / "results"
MARKERS = {"utf8": "o", "zstd": "s", "ids": "D", "unigram": "^", "bigram": "v", "lm": "*", "packet": "P",
           "packet_q": "X"}
AXES = {"bytes": ("bytes", "bytes on the wire per question (log)"),
        "time": ("time_ms", "receiver ms to the first answer token, decoding included (log)")}


def _panel(axis, points: list[dict], x: str, colours: dict) -> None:
    """One receiver and regime: every (method, coding) series, the front ringed and its staircase."""
    for (method, coding) in sorted({(p["method"], p["coding"]) for p in points}):
        series = sorted((p for p in points if (p["method"], p["coding"]) == (method, coding) and p[x] is not None),
                        key=lambda p: p[x])
        axis.plot([p[x] for p in series], [p["f1"] for p in series], marker=MARKERS.get(coding, "."),
                  color=colours[method], linestyle="-", linewidth=0.8, markersize=5, alpha=0.85)
    front = sorted((p for p in points if p["on_front"] and p[x] is not None), key=lambda p: (p[x], -p["f1"]))
    staircase, best = [], -1.0
    for p in front:
        if p["f1"] > best:
            staircase.append(p)
            best = p["f1"]
    if staircase:
        axis.step([p[x] for p in staircase], [p["f1"] for p in staircase], where="post", color="black",
                  linewidth=1.2, alpha=0.6)
        axis.scatter([p[x] for p in front], [p["f1"] for p in front], s=90, facecolors="none", edgecolors="black",
                     linewidths=1.0, zorder=5)
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.grid(alpha=0.3, which="both")


def plot(points: list[dict], out_dir: Path) -> list[Path]:
    """Draw f1_vs_bytes.png and f1_vs_time.png from Pareto points into `out_dir`; the paths written."""
    panels = sorted({(p["receiver"], p["regime"]) for p in points})
    methods = sorted({p["method"] for p in points})
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    colours = {m: cmap(i % cmap.N) for i, m in enumerate(methods)}
    handles = [Line2D([], [], color=colours[m], label=m) for m in methods] + \
        [Line2D([], [], color="grey", marker=mk, linestyle="", label=f"coding: {c}") for c, mk in MARKERS.items()] + \
        [Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="-", label="Pareto front")]
    written = []
    for name, (x, label) in AXES.items():
        receivers, regimes = sorted({r for r, _ in panels}), sorted({g for _, g in panels}, reverse=True)
        figure, axes = plt.subplots(len(receivers), len(regimes), figsize=(5.4 * len(regimes), 4.2 * len(receivers)),
                                    squeeze=False)
        for row, receiver in enumerate(receivers):      # a row per receiver, a column per regime
            for column, regime in enumerate(regimes):
                axis = axes[row][column]
                _panel(axis, [p for p in points if (p["receiver"], p["regime"]) == (receiver, regime)], x, colours)
                axis.set_title(f"{receiver} / {regime.replace('_', '-')}")
                axis.set_xlabel(label)
                axis.set_ylabel("F1")
        figure.tight_layout()
        figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False)
        path = Path(out_dir) / f"f1_vs_{name}.png"
        figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def main() -> None:
    points = json.loads((RESULTS / "pareto.json").read_text())["points"]
    for path in plot(points, RESULTS):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
