"""An evaluation's output folder: resume bookkeeping, and no earlier result lost to a failed run.

Rows are appended to rows.jsonl (and their predictions to predictions.jsonl) as they finish, so a
rerun with the same config skips the rows already done; a config that differs only in its method
grid keeps them too. A run of another config does not touch the folder's results: it works in
`<out_dir>/.pending/` (resumable there) and replaces them only once it has finished, keeping the
replaced ones in `<out_dir>/previous/`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from latentwire.config import Config

RESULT_FILES = ("config.json", "rows.jsonl", "predictions.jsonl", "metrics.json", "results.md")
# config entries that choose which rows run or where they go, not what a row's numbers are
GRID_KEYS = (("eval", "methods"), ("eval", "budgets"), ("wire", "eval_bits"), ("eval", "out_dir"),
             ("eval", "threads"), ("eval", "sentences"), ("eval", "rates"), ("eval", "ks"))
NEUTRAL_SECTIONS = ("serve",)   # settings of other commands, which no row's numbers depend on
# fields whose default is not the behaviour of the configs that predate them: such a config gets this value
EARLIER_BEHAVIOUR = {("eval", "leave_out"): []}       # before eval.leave_out, a budget merged only


def same_run(old: dict, new: dict) -> bool:
    """Whether rows computed under config `old` are valid under `new`: equal but for the method grid
    (and the output folder and thread count). A field that `old` predates counts at its default (a field is
    added with the default that keeps the earlier behaviour)."""
    def strip(config: dict) -> dict:
        config = with_defaults(json.loads(json.dumps(config)))
        for section, key in GRID_KEYS:
            config.get(section, {}).pop(key, None)
        for section in NEUTRAL_SECTIONS:
            config.pop(section, None)
        return config
    return strip(old) == strip(new)


def with_defaults(config: dict) -> dict:
    """`config` with the fields it lacks filled from today's defaults, or where that default changed what the
    older configs did, from EARLIER_BEHAVIOUR (its own values kept as they are)."""
    def fill(defaults, values):
        if not isinstance(defaults, dict) or not isinstance(values, dict):
            return values
        return {**defaults, **{k: fill(defaults.get(k), v) for k, v in values.items()}}
    filled = fill(Config().to_dict(), config)
    for (section, key), value in EARLIER_BEHAVIOUR.items():
        if key not in config.get(section, {}):
            filled[section][key] = value
    return filled


def row_key(record: dict) -> tuple:
    """(receiver, method, M, bits, sentences, rate, k): which row a metrics row or a prediction belongs to."""
    return (record["receiver"], record["method"], record["M"], record.get("bits"), record.get("sentences"),
            record.get("rate"), record.get("k"))


def _read_config(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class RunFolder:
    """The folder an evaluation of `config` (a dict) writes to under `out_dir`, chosen without writing."""

    def __init__(self, out_dir: str | Path, config: dict):
        self.out_dir, self.config = Path(out_dir), config
        saved = _read_config(self.out_dir / "config.json")
        self.staged = saved is not None and not same_run(saved, config)
        self.path = self.out_dir / ".pending" if self.staged else self.out_dir

    def done_rows(self) -> list[dict]:
        """Rows already written by an earlier, interrupted run of the same config (none for another config)."""
        saved = _read_config(self.path / "config.json")
        path = self.path / "rows.jsonl"
        if saved is None or not same_run(saved, self.config) or not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: that row is simply run again
                break
        return rows

    def open(self, done: list[dict]) -> None:
        """Start writing: the config, and the done rows' predictions only (a kill between a row's two writes
        leaves predictions of an unfinished row). Everything before this call only reads."""
        if self.staged and not self.done_rows():
            shutil.rmtree(self.path, ignore_errors=True)   # an unfinished run of yet another config
        self.path.mkdir(parents=True, exist_ok=True)
        keys = {row_key(r) for r in done}
        predictions = self.path / "predictions.jsonl"
        kept = [line for line in predictions.read_text().splitlines() if _finished(line, keys)] \
            if predictions.is_file() else []
        predictions.write_text("".join(line + "\n" for line in kept))
        rows = self.path / "rows.jsonl"
        rows.write_text("".join(json.dumps(r) + "\n" for r in done))
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))

    def append(self, row: dict, predictions: list[dict]) -> None:
        """One finished row and its predictions."""
        with open(self.path / "predictions.jsonl", "a") as handle:
            handle.writelines(json.dumps(p) + "\n" for p in predictions)
        with open(self.path / "rows.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def finish(self) -> None:
        """A staged run that completed replaces the folder's results (those go to out_dir/previous/)."""
        if not self.staged:
            return
        previous = self.out_dir / "previous"
        shutil.rmtree(previous, ignore_errors=True)
        previous.mkdir()
        for name in RESULT_FILES:
            if (self.out_dir / name).exists():
                (self.out_dir / name).replace(previous / name)
        for name in RESULT_FILES:
            if (self.path / name).exists():
                (self.path / name).replace(self.out_dir / name)
        shutil.rmtree(self.path, ignore_errors=True)
        self.path, self.staged = self.out_dir, False


def _finished(line: str, keys: set) -> bool:
    try:
        return line.strip() != "" and row_key(json.loads(line)) in keys
    except (json.JSONDecodeError, KeyError):
        return False
