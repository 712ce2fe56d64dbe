"""The Pareto front: points per coding, dominance in bytes, time and F1 within a receiver and regime."""
import pytest

from latentwire.eval.pareto import mark_front, pareto_points, relative_to_text, row_points


def _row(method, f1, receiver="r", regime="question_aware", **columns):
    return {"receiver": receiver, "regime": regime, "method": method, "M": None, "bits": None, "f1": f1, **columns}


TEXT = _row("text", 0.6, bytes_utf8=800, bytes_zstd=450, bytes_ids=370, bytes_unigram=230, receiver_ms=300,
            decode_ms_utf8=0.0, decode_ms_zstd=0.1, decode_ms_ids=1.0, decode_ms_unigram=2.0)
CODED = _row("lm_coded", 0.6, bytes_utf8=800, bytes_lm=110, receiver_ms=300, decode_ms_lm=7000, decode_ms_utf8=0)
CUT = _row("context_budget", 0.2, M=20, bytes_utf8=150, bytes_ids=60, receiver_ms=90, decode_ms_utf8=0,
           decode_ms_ids=1.0)
LATENT = _row("latent", 0.25, bits=4, wire_bytes=130, receiver_ms=80)


def test_rows_become_one_point_per_coding():
    assert [p.coding for p in row_points(TEXT)] == ["utf8", "zstd", "ids", "unigram"]
    assert [p.coding for p in row_points(CODED)] == ["lm"]          # lm_coded is its own coding only
    (packet,) = row_points(LATENT)
    assert packet.coding == "packet" and packet.bytes == 130 and packet.label == "latent 4bit [packet]"
    assert row_points(TEXT)[3].time_ms == pytest.approx(302.0)      # receiver + the coding's decoding
    tokens = _row("latent_k", 0.3, "r", "context_only", k=4, wire_bytes=280, wire_bytes_coded_question=240,
                  receiver_ms=100)
    assert [(p.coding, p.bytes, p.time_ms) for p in row_points(tokens)] == [("packet", 280, 100),
                                                                           ("packet_q", 240, 100)]
    old = {"receiver": "r", "method": "text", "M": None, "f1": 0.5, "text_bytes": 700, "text_bytes_zstd": 400}
    assert [(p.coding, p.bytes, p.time_ms) for p in row_points(old)] == [("utf8", 700, None), ("zstd", 400, None)]


def test_front_keeps_undominated_points_per_receiver_and_regime():
    points = {p["label"]: p["on_front"] for p in pareto_points([TEXT, CODED, CUT, LATENT])}
    assert points["text [unigram]"] and points["lm_coded [lm]"] and points["latent 4bit [packet]"]
    assert points["text [utf8]"] and points["text [zstd]"]    # the same F1 is not dominated (F1 must be higher)
    assert not points["context_budget M=20 [utf8]"]           # the latent: fewer bytes, less time, higher F1
    assert points["context_budget M=20 [ids]"]                # fewer bytes than the packet
    other = _row("text", 0.9, receiver="other", bytes_utf8=10, receiver_ms=1)
    blind = _row("text", 0.9, regime="context_only", bytes_utf8=10, receiver_ms=1)
    points = {(p["receiver"], p["regime"], p["label"]): p["on_front"] for p in pareto_points([TEXT, other, blind])}
    assert points[("r", "question_aware", "text [unigram]")]            # other receivers and regimes do not count


def test_equal_points_do_not_dominate_each_other_and_untimed_points_compare_on_bytes():
    a, b = row_points(_row("x", 0.5, bytes_utf8=100, receiver_ms=10))[0], \
        row_points(_row("y", 0.5, bytes_utf8=100, receiver_ms=10))[0]
    assert all(p.on_front for p in mark_front([a, b]))
    slow = row_points(_row("z", 0.4, bytes_utf8=100))[0]       # no receiver time: bytes and F1 only
    assert not mark_front([a, slow])[1].on_front


def test_relative_to_text():
    rows = relative_to_text([dict(TEXT), dict(CUT), dict(_row("text", 0.5, regime="context_only")),
                             dict(_row("latent", 0.25, regime="context_only"))])
    assert rows[1]["f1_rel_text"] == pytest.approx(0.2 / 0.6) and rows[3]["f1_rel_text"] == pytest.approx(0.5)


def _driver():
    """bench/pareto.py as a module (a driver script, not a package module)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("pareto_driver", Path(__file__).parents[1] / "bench" / "pareto.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    return driver


def test_the_driver_joins_another_roots_latent_rows_to_the_peers(tmp_path):
    import json

    driver = _driver()
    reader = [dict(TEXT, f1=0.61, receiver_ms=330), _row("latent_k", 0.5, k=2, wire_bytes=300)]
    for root, rows in (("peers", [TEXT, CUT, LATENT]), ("reader", reader)):
        (tmp_path / root / "question_aware").mkdir(parents=True)
        (tmp_path / root / "question_aware" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rows = driver.collect(tmp_path / "peers", [tmp_path / "reader"])
    assert [(r["method"], r["f1"]) for r in rows] == [("text", 0.6), ("context_budget", 0.2), ("latent", 0.25),
                                                      ("latent_k", 0.5)]
    assert rows[-1]["text_receiver_ms_same_run"] == 330
    earlier = [dict(TEXT, f1=0.7)]                                   # an earlier report's rows for the peers
    assert [(r["method"], r["f1"]) for r in driver.collect(tmp_path / "peers", [tmp_path / "reader"], earlier)] == [
        ("text", 0.7), ("latent_k", 0.5)]
    import argparse
    import pytest
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "norows.json").write_text('{"rows": 3}')
    for bad in ("bad.json", "norows.json", "absent.json"):
        with pytest.raises(SystemExit) as stopped:
            driver.read_peer_rows(argparse.ArgumentParser(), str(tmp_path / bad))
        assert stopped.value.code == 2
    points = pareto_points(rows)
    assert any(p["label"].startswith("latent_k k=2") for p in points)


def test_the_driver_refuses_a_front_of_rows_timed_with_and_without_the_prefix_cached():
    driver = _driver()
    cached = [dict(TEXT, timed_n=5, prefix_cached_n=5), dict(CUT, timed_n=5, prefix_cached_n=5)]
    assert driver.mixed_timing(cached) is None
    assert driver.mixed_timing(cached + [dict(LATENT, timed_n=0)]) is None         # an untimed row: no claim
    assert "context_budget" in driver.mixed_timing([cached[0], dict(CUT, timed_n=5)])   # an earlier, uncached row


def test_the_driver_reports_another_root_beside_it_not_over_the_committed_figures(tmp_path):
    driver = _driver()
    assert driver.results_folder(driver.RUNS) == driver.RESULTS
    assert driver.results_folder(tmp_path / "bench-pareto-k4") == tmp_path / "bench-pareto-k4" / "results"


def test_the_driver_refuses_a_bad_setting_in_one_line_before_any_folder(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    driver = Path(__file__).parents[1] / "bench" / "pareto.py"
    runs = tmp_path / "runs"
    done = subprocess.run([sys.executable, str(driver), "--max-position-share", "2", "--n", "1", "--methods", "text",
                           "--runs", str(runs), "--regimes", "context_only"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and not runs.exists()
    assert done.stderr.strip().splitlines() == [
        "pareto.py: eval.max_position_share must be in [0, 1] (0: no budget), got 2.0"]
    done = subprocess.run([sys.executable, str(driver), "--leave-out", "label", "nothing", "--n", "1", "--methods",
                           "text", "--runs", str(runs), "--regimes", "context_only"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and not runs.exists()
    assert done.stderr.strip().splitlines() == [
        "pareto.py: eval.leave_out must list rules among label, end_mark, predictable, got ['nothing']"]
