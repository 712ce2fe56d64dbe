"""The Pareto benchmark (issue 17): every peer and the latent on F1 against wire bytes and receiver time.

    python bench/pareto.py --config configs/collapse_pairs_qa.yaml --checkpoint default   # 500 questions, both receivers
    python bench/pareto.py --n 20 --timing-n 5 --methods text no_context   # a small run
    python bench/pareto.py --report                                  # table, JSON and plots from what has run
    python bench/pareto.py --sender-only lm_coded llmlingua --threads 1   # beside the run above: its sender
                                                                  # work ahead, in a process (core) of its own
    python bench/pareto.py --config configs/token_reader.yaml --checkpoint runs/token_reader \
        --latent latent_k latent_focus latent_selected --methods text --runs runs/bench-pareto-token_reader
    python bench/pareto.py --report --latent-runs runs/bench-pareto-token_reader   # its rows among the peers
    python bench/pareto.py --report --peer-rows bench/results/pareto.json --latent-runs <root> \
        --results bench/results/pareto_token_reader      # ... among the peers of an earlier report's rows
    python bench/pareto.py --config configs/collapse_pairs_qa.yaml --checkpoint default \
        --runs runs/bench-pareto-timed --threads 1     # every row again, answers memoised: all timed in one
                                                       # process, alone on the machine
    python bench/pareto.py --config configs/token_reader.yaml --checkpoint runs/token_reader \
        --latent latent_k latent_focus --methods text --runs runs/bench-pareto-token_reader-timed \
        --answers-from runs/bench-pareto-token_reader     # the same for a latent's root

Both regimes: question_aware (the sender sees the question) and context_only (it never does; the receiver,
which knows the question, may select sentences itself, and the question crosses as its own UTF-8 bytes).
Each regime is one `latentwire eval` run into runs/bench-pareto/<regime>/ (resumable there: a killed run
continues with the rows not done, and the per-example sender work, lm coding and LLMLingua's pruning, is
kept in runs/bench-pareto/sender_cache-<sender fingerprint>.jsonl, shared by every root); prompts that are the same in both regimes are answered once (the
harness's memo) and only costed and timed again (--prefix-cache: with each receiver's prompt prefix in a KV
cache computed once, as a server keeps a fixed system prompt's; every row of a report is timed one way or
the other). receiver_ms is timed at batch 1 on the first --timing-n
questions. A later checkpoint's latents run in a root of their own beside `text` (answers memoised, so only
timed again: the receiver_ms reference of that run) and join the peers' rows in the report. A run that was
resumed across processes (or shared its machine for a while) is timed again as a whole in a fresh root: every
answer comes from the memo, so only the costs and receiver_ms are computed, all in one process. Rows to
<results>/pareto.json with the front (latentwire.eval.pareto) marked; <results>/f1_vs_bytes.png and
f1_vs_time.png draw it, one panel per receiver and regime. <results> is --results, else bench/results for the
default root and <runs>/results for any other (a run of another root never overwrites the committed figures).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE.parent / "runs" / "bench-pareto"
RESULTS = HERE / "results"
REGIMES = ("question_aware", "context_only")
METHODS = ["text", "no_context", "context_budget", "select_lexical", "select_minilm", "llmlingua", "lm_coded"]
COLUMNS = ["receiver", "regime", "method", "M", "sentences", "rate", "bits", "k", "n", "f1", "f1_rel_text",
           "prompt_tokens", "bytes_utf8", "bytes_zstd", "bytes_ids", "bytes_unigram", "bytes_bigram", "bytes_lm", "wire_bytes",
           "compression", "receiver_ms", "sender_ms", "exact"]


def run_regime(regime: str, args, receivers: dict, memo: dict, peers: dict) -> list[dict]:
    """One evaluation of every method in `regime`; its rows."""
    from latentwire.config import load_config
    from latentwire.eval.harness import evaluate
    from latentwire.eval.methods import METHODS as REGISTRY

    latents = [m for m in args.latent if regime in REGISTRY[m].regimes] if args.checkpoint else []
    methods = latents + [m for m in args.methods if regime in REGISTRY[m].regimes]
    overrides = [f"data.n={args.n}", f"eval.methods=[{','.join(methods)}]", f"eval.regime={regime}",
                 f"eval.budgets=[{','.join(map(str, args.budgets))}]", f"eval.timing_n={args.timing_n}",
                 f"eval.rates=[{','.join(map(str, args.rates))}]", "eval.joint=false",
                 f"eval.shuffled_f1={str(args.shuffled_f1).lower()}", f"eval.ks=[{','.join(map(str, args.ks))}]",
                 f"eval.codings=[{','.join(args.codings)}]",
                 "eval.shuffle_test=false",
                 f"wire.eval_bits=[{args.bits}]", f"eval.out_dir={Path(args.runs) / regime}", f"eval.threads={args.threads}",
                 f"eval.prefix_cache={str(args.prefix_cache).lower()}",
                 f"eval.fold_weights={str(args.fold_weights).lower()}",
                 f"eval.max_position_share={args.max_position_share}"]
    overrides += [f"eval.leave_out=[{','.join(args.leave_out)}]"] if args.leave_out is not None else []
    overrides += [f"checkpoint={args.checkpoint}"] if args.checkpoint else []
    overrides += [f"receivers={args.receivers}"] if args.receivers else []
    return evaluate(load_config(args.config, overrides), receivers=receivers, memo=memo, peers=peers)


def prefill(args) -> None:
    """The sender work of args.sender_only for every regime, into the sender cache the run reads."""
    from latentwire.config import load_config
    from latentwire.eval.sender_cache import SenderCache
    from latentwire.eval.sender_prefill import prefill_sender_work

    overrides = [f"data.n={args.n}", f"eval.rates=[{','.join(map(str, args.rates))}]",
                 f"eval.threads={args.threads}"] + ([f"receivers={args.receivers}"] if args.receivers else [])
    peers = SenderCache(RUNS, sender_fingerprint(args))
    prefill_sender_work(load_config(args.config, overrides), peers, args.sender_only, args.regimes)
    print(f"sender work of {args.sender_only} in {peers.path}")


def sender_fingerprint(args) -> dict:
    """What the per-example sender work depends on: the sender model (the first receiver), its precision on
    this machine and the data."""
    from latentwire.config import load_config
    from latentwire.precision import resolve_run

    config = load_config(args.config, [f"receivers={args.receivers}"] if args.receivers else [])
    return {"sender": config.receivers[0].model, "dtype": resolve_run(config),
            "data": [config.data.source, config.data.path, config.data.split, config.data.max_context_chars]}


def collect(runs: Path, latent_runs: list[Path] = (), peer_rows: list[dict] | None = None) -> list[dict]:
    """The rows of every regime's run folder (finished or not), or `peer_rows` (those of an earlier report's
    pareto.json) in their place, plus the trained rows (latent*) of the run roots `latent_runs` (another
    checkpoint's latents, run beside the peers with --runs <its root>), each with `text_receiver_ms_same_run`:
    the text row's receiver_ms timed in that root's run (the ratio to read, since the peers were timed in
    another process)."""
    def rows_of(root: Path) -> list[dict]:
        rows = []
        for regime in REGIMES:
            path = root / regime / "rows.jsonl"
            if path.is_file():
                rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in rows if r["method"] not in ("latent_oracle", "latent_joint")]
    extra = []
    for root in latent_runs:
        rows = rows_of(Path(root))
        text = {(r["receiver"], r.get("regime")): r.get("receiver_ms") for r in rows if r["method"] == "text"}
        extra += [{**r, "text_receiver_ms_same_run": text.get((r["receiver"], r.get("regime")))}
                  for r in rows if r["method"].startswith("latent")]
    return (peer_rows or rows_of(runs)) + extra


def report(rows: list[dict], results: Path) -> None:
    """Write <results>/pareto.json and the two plots; print the table and the front."""
    from latentwire.eval.pareto import pareto_points, relative_to_text
    from latentwire.eval.report import plain_table
    from latentwire.precision import machine_info
    from plot import plot

    rows = relative_to_text(rows)
    points = pareto_points(rows)
    result = {"machine": machine_info(), "rows": rows, "points": points}
    results.mkdir(parents=True, exist_ok=True)
    (results / "pareto.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(points, results)
    print(plain_table(rows, COLUMNS))
    front = [p for p in points if p["on_front"]]
    print("\non the front:")
    for key in sorted({(p["receiver"], p["regime"]) for p in front}):
        names = sorted(p["label"] for p in front if (p["receiver"], p["regime"]) == key)
        print(f"  {key[0]} / {key[1]}: {', '.join(names)}")


def read_peer_rows(parser: argparse.ArgumentParser, path: str) -> list[dict]:
    """The "rows" of the pareto.json at `path`; a missing or malformed file ends the run (exit 2, one line)."""
    try:
        rows = json.loads(Path(path).read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        parser.error(f"--peer-rows {path}: not a readable pareto.json with a 'rows' list ({type(error).__name__})")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "method" in r for r in rows):
        parser.error(f"--peer-rows {path}: 'rows' must be a list of result rows")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--timing-n", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--budgets", nargs="+", type=int, default=[20, 40, 64, 96])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.5, 0.33])
    parser.add_argument("--checkpoint", help="a trained latent (context-only) to place among the peers")
    parser.add_argument("--config", help="a recipe YAML the evaluation starts from (e.g. the checkpoint's)")
    parser.add_argument("--bits", type=int, default=4, help="the latent's wire bits")
    parser.add_argument("--latent", nargs="+", default=["latent"],
                        help="the checkpoint's methods (a token reader: latent_k latent_focus latent_selected)")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 3, 4], help="a token reader's k values")
    parser.add_argument("--shuffled-f1", action="store_true", help="the shuffled-packet F1 in latent rows")
    parser.add_argument("--max-position-share", type=float, default=0.0,
                        help="a token reader's merged readings within this share of the positions the text "
                             "takes (eval.max_position_share; 0: none)")
    parser.add_argument("--leave-out", nargs="*",
                        help="within --max-position-share, what the receiver leaves out before it merges "
                             "(eval.leave_out; default: its default; the flag alone: merge only)")
    parser.add_argument("--codings", nargs="+", default=["utf8", "zstd", "ids", "unigram", "bigram"],
                        help="text codings costed (a run folder resumes only with the codings it started with)")
    parser.add_argument("--receivers", help="receivers= override (default: both)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--prefix-cache", action="store_true",
                        help="time receivers with the prompt prefix's KV cache computed once (eval.prefix_cache)")
    parser.add_argument("--fold-weights", action="store_true",
                        help="time a reader with its LoRA folded into the receiver's weights (eval.fold_weights)")
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    parser.add_argument("--report", action="store_true", help="only report what the run folders hold")
    parser.add_argument("--sender-only", nargs="+", metavar="METHOD",
                        help="only do these methods' sender work (lm_coded, llmlingua) into the sender cache, "
                             "for a run in another process to find")
    parser.add_argument("--runs", default=str(RUNS), help="run folders (one per regime)")
    parser.add_argument("--results", help="where pareto.json and the plots go (default: bench/results for the "
                                          "default --runs, else <runs>/results: another root's run never "
                                          "overwrites the committed benchmark's figures)")
    parser.add_argument("--answers-from", nargs="*", default=[],
                        help="run roots whose answers are reused (a timed rerun of a latent's root: only the "
                             "costs and receiver_ms are computed again)")
    parser.add_argument("--peer-rows", help="--report: the peers' rows from this pareto.json (e.g. the one-process "
                                            "timed pass's) instead of the --runs folders")
    parser.add_argument("--latent-runs", nargs="*", default=[],
                        help="--report: run roots whose latent rows join the peers' (another checkpoint's)")
    args = parser.parse_args()
    args.results = args.results or str(results_folder(Path(args.runs)))
    if args.sender_only:
        prefill(args)
        return
    if not args.report:
        from latentwire.errors import ConfigError
        from latentwire.eval.harness import memo_from_predictions
        from latentwire.eval.sender_cache import SenderCache

        receivers, memo = {}, {}
        peers = SenderCache(RUNS, sender_fingerprint(args))   # lm coding, LLMLingua: done once per sender
        roots = [Path(args.runs), RUNS, *map(Path, args.answers_from)]
        for root in dict.fromkeys(roots):     # answers given in either regime's folder of this root (a resumed
            for regime in REGIMES:            # run), of the peers' root or of --answers-from roots
                memo.update(memo_from_predictions(root / regime / "predictions.jsonl"))
                memo.update(memo_from_predictions(root / regime / ".pending" / "predictions.jsonl"))
        for regime in args.regimes:
            try:
                run_regime(regime, args, receivers, memo, peers)
            except ConfigError as error:      # a bad setting: one line, exit 2 (before the folder is touched)
                print(f"pareto.py: {error}", file=sys.stderr)
                sys.exit(2)
    peers = read_peer_rows(parser, args.peer_rows) if args.peer_rows else None
    rows = collect(Path(args.runs), args.latent_runs, peers)
    if problem := mixed_timing(rows):
        parser.error(problem)
    report(rows, Path(args.results))


def results_folder(runs: Path) -> Path:
    """Where a report of the run root `runs` goes unless --results says: bench/results for the benchmark's own
    root (RUNS), <runs>/results for any other."""
    return RESULTS if runs.resolve() == RUNS.resolve() else runs / "results"


def mixed_timing(rows: list[dict]) -> str | None:
    """Why `rows` cannot share a receiver-time front (some timed with the prompt prefix cached, some
    without), or None."""
    timed = [r for r in rows if r.get("timed_n")]
    cached = {bool(r.get("prefix_cached_n")) for r in timed}
    if len(cached) > 1:
        names = sorted({f"{r['receiver']}/{r['method']}" for r in timed if not r.get("prefix_cached_n")})[:4]
        return (f"rows timed with and without the prompt prefix cached (eval.prefix_cache) cannot share a "
                f"front; uncached: {', '.join(names)} ...")
    return None


if __name__ == "__main__":
    main()
