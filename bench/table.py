"""Print a results JSON (bench/results/*.json: a list of metric rows, or an eval's metrics.json) as the markdown
table used in RESULTS.md.

    python bench/table.py bench/results/baselines.json
"""
import json
import sys

from latentwire.eval.report import markdown_table, result_rows

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python bench/table.py RESULTS.json", file=sys.stderr)
        sys.exit(2)
    try:
        with open(sys.argv[1]) as handle:
            rows = result_rows(json.load(handle))
    except (OSError, ValueError) as error:      # a missing file, JSON that does not parse, no rows
        print(f"table.py: {sys.argv[1]}: {error}", file=sys.stderr)
        sys.exit(2)
    print(markdown_table(rows))
