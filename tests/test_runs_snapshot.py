"""scripts/runs_snapshot.py: a run root's resumable state packed and unpacked on another machine."""
import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("runs_snapshot", Path(__file__).parent.parent / "scripts" / "runs_snapshot.py")
snapshot = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(snapshot)


def test_save_keeps_what_a_resumed_run_needs_and_restore_refuses_to_overwrite(tmp_path):
    root = tmp_path / "runs" / "bench-x"
    (root / "context_only" / ".pending").mkdir(parents=True)
    (root / "context_only" / "previous").mkdir()
    (root / "sender_cache-abc.jsonl").write_text('{"fingerprint": {}}\n')
    (root / "context_only" / "rows.jsonl").write_text('{"f1": 0.5}\n')
    (root / "context_only" / ".pending" / "predictions.jsonl").write_text("{}\n")
    (root / "context_only" / "previous" / "rows.jsonl").write_text("old\n")
    archive = snapshot.save(root, tmp_path / "state")
    elsewhere = tmp_path / "fresh"
    restored = snapshot.restore(archive, elsewhere)
    assert restored == elsewhere / "bench-x"
    got = sorted(str(p.relative_to(restored)) for p in restored.rglob("*") if p.is_file())
    assert got == ["context_only/.pending/predictions.jsonl", "context_only/rows.jsonl", "sender_cache-abc.jsonl"]
    assert (restored / "context_only" / "rows.jsonl").read_text() == '{"f1": 0.5}\n'
    with pytest.raises(FileExistsError, match="exists"):
        snapshot.restore(archive, elsewhere)


def test_a_bad_archive_is_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(b"not an archive")
    monkeypatch.setattr("sys.argv", ["runs_snapshot.py", "restore", str(bad)])
    assert snapshot.main() == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"runs_snapshot: {bad}:") and "\n" not in message
