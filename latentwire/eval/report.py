"""Markdown tables of metric rows."""
from __future__ import annotations

COLUMNS = [("receiver", "receiver", "{}"), ("method", "method", "{}"), ("M", "M", "{}"), ("n", "n", "{}"),
           ("em", "EM", "{:.3f}"), ("f1", "F1", "{:.3f}"), ("firsttok1", "FirstTok@1", "{:.3f}"),
           ("firsttok5", "FirstTok@5", "{:.3f}"), ("nll", "NLL/tok", "{:.2f}"),
           ("prompt_tokens", "prompt tok", "{:.1f}"), ("text_bytes", "bytes", "{:.0f}"),
           ("text_bytes_zstd", "zstd bytes", "{:.0f}"), ("sec_per_example", "s/example", "{:.3f}"),
           ("agree_with_text", "same answer as text", "{:.3f}")]


def markdown_table(rows: list[dict]) -> str:
    """A markdown table of metric rows (missing values shown as -)."""
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            cells.append("-" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
