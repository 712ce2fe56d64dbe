"""Carry a resumable benchmark's state across machines: runs/ is not committed, and a fresh checkout starts
without it. `save` packs a run root's resumable files (rows, predictions, configs, the sender cache) into
bench/state/<root name>.tar.xz, to be committed; `restore` unpacks one into runs/ where that root is absent,
so the benchmark resumes where the last machine left it.

    python scripts/runs_snapshot.py save runs/bench-pareto
    python scripts/runs_snapshot.py restore bench/state/bench-pareto.tar.xz
"""
from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "bench" / "state"
KEPT = ("rows.jsonl", "predictions.jsonl", "config.json", "metrics.json", "results.md")


def resumable_files(root: Path) -> list[Path]:
    """The files of `root` a resumed run needs: each regime folder's results (and its unfinished .pending
    run), and the sender caches; not previous/ results or logs."""
    files = sorted(root.glob("sender_cache-*.jsonl"))
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for sub in (folder, folder / ".pending"):
            files += [sub / name for name in KEPT if (sub / name).is_file()]
    return files


def save(root: Path, state: Path = STATE) -> Path:
    """Pack `root`'s resumable files into <state>/<name>.tar.xz (written whole, then renamed)."""
    state.mkdir(parents=True, exist_ok=True)
    target = state / f"{root.name}.tar.xz"
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w:xz") as archive:
        for path in resumable_files(root):
            archive.add(path, arcname=str(path.relative_to(root.parent)))
    partial.replace(target)
    return target


def restore(archive_path: Path, runs: Path) -> Path:
    """Unpack `archive_path` into `runs` unless the root it holds is there already; that root."""
    with tarfile.open(archive_path, "r:xz") as archive:
        roots = {Path(name).parts[0] for name in archive.getnames()}
        if len(roots) != 1:
            raise ValueError(f"holds {len(roots)} run roots; a snapshot holds exactly one")
        root = runs / roots.pop()
        if root.exists():
            raise FileExistsError(f"{root}: exists; move it away to restore {archive_path}")
        archive.extractall(runs, filter="data")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("path", type=Path, help="save: a run root under runs/; restore: a bench/state archive")
    args = parser.parse_args()
    try:
        if args.action == "save":
            print(save(args.path))
        else:
            print(restore(args.path, ROOT / "runs"))
    except (OSError, tarfile.TarError, ValueError) as error:
        print(f"runs_snapshot: {args.path}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
