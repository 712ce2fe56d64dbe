"""Markdown tables of metric rows."""
from __future__ import annotations

from latentwire.eval.schema import upgrade_row

COLUMNS = [("receiver", "receiver", "{}"), ("method", "method", "{}"), ("M", "M", "{}"), ("bits", "bits", "{}"),
           ("sentences", "sent.", "{}"), ("rate", "rate", "{}"), ("k", "k", "{}"), ("n", "n", "{}"),
           ("em", "EM", "{:.3f}"), ("f1", "F1", "{:.3f}"), ("firsttok1", "FirstTok@1", "{:.3f}"),
           ("firsttok5", "FirstTok@5", "{:.3f}"), ("nll", "NLL/tok", "{:.2f}"),
           ("prompt_tokens", "prompt tok", "{:.1f}"), ("bytes_utf8", "bytes", "{:.0f}"),
           ("bytes_zstd", "zstd bytes", "{:.0f}"), ("bytes_ids", "ids bytes", "{:.0f}"),
           ("bytes_unigram", "unigram bytes", "{:.0f}"), ("bytes_bigram", "bigram bytes", "{:.0f}"),
           ("bytes_lm", "lm bytes", "{:.0f}"),
           ("sec_per_example", "s/example", "{:.3f}"), ("receiver_ms", "receiver ms", "{:.0f}"),
           ("wire_bytes", "wire bytes", "{:.0f}"),
           ("seq_compression", "seq x", "{:.1f}"), ("wire_compression", "wire x", "{:.1f}"),
           ("wire_compression_zstd", "wire x (zstd)", "{:.1f}"), ("latent_cosine", "latent cos", "{:.3f}"),
           ("bits_specific", "bits specific", "{:.2f}"), ("bits_prior", "bits prior", "{:.2f}"),
           ("agree_with_text", "same answer as text", "{:.3f}")]


def result_rows(data: object) -> list[dict]:
    """The metric rows of a results JSON: a list of rows, or an object with a "rows" list (an eval's
    metrics.json); ValueError for anything else."""
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"expected a list of metric rows or an object with a \"rows\" list of them")
    return rows


def markdown_table(rows: list[dict]) -> str:
    """A markdown table of metric rows (missing values shown as -; columns empty in every row left out)."""
    rows = [upgrade_row(row) for row in rows]
    columns = [c for c in COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append("-" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plain_table(rows: list[dict], keys: list[str]) -> str:
    """A markdown table of `keys` for any rows (floats to 4 significant digits, missing as -)."""
    def cell(value) -> str:
        return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)
