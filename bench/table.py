"""Print a results JSON (bench/results/*.json) as the markdown table used in RESULTS.md.

    python bench/table.py bench/results/baselines.json
"""
import json
import sys

from latentwire.eval.report import markdown_table

if __name__ == "__main__":
    print(markdown_table(json.load(open(sys.argv[1]))))
