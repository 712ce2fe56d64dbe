"""End-to-end checks on the real offline receivers (select with -m integration)."""
import json
import subprocess
import sys

import pytest

from latentwire.config import PromptConfig
from latentwire.data.loaders import load_examples
from latentwire.llm.loader import load_receiver
from latentwire.prompt import PromptBuilder, format_content

pytestmark = pytest.mark.integration
OFFLINE = ["smollm2-135m", "qwen2.5-coder-0.5b"]


@pytest.fixture(scope="module", params=OFFLINE)
def real_receiver(request):
    return load_receiver(request.param)


def test_second_load_reads_the_safetensors_cache(real_receiver, monkeypatch):
    import latentwire.llm.loader as loader
    monkeypatch.setattr(loader, "resolve_gguf", lambda *_: pytest.fail("the GGUF was de-quantised again"))
    again = load_receiver(real_receiver.source)    # (a timing bound here failed on a loaded 2-core machine)
    assert not any(p.requires_grad for p in again.model.parameters()) and not again.model.training


def test_t0_alignment_on_many_squad_answers(real_receiver):
    builder = PromptBuilder(real_receiver.tokenizer, PromptConfig(), real_receiver.name)
    examples, _ = load_examples("squad", split="validation", n=400, seed=1)
    special = set(real_receiver.tokenizer.all_special_ids)
    for e in examples:
        content = format_content(e.question, e.context)
        for answer in e.answers:
            ids = builder.answer_ids(content, answer)  # raises AlignmentError on any mismatch
            assert ids and not special & set(ids)
            decoded = real_receiver.tokenizer.decode(ids)
            assert decoded.strip() == answer.strip()


def test_cli_eval_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "latentwire.cli", "eval", "--quiet", "data.n=6",
                             "eval.methods=[text,embed_raw,token_budget]", "eval.budgets=[32]",
                             "receivers=smollm2-135m", f"eval.out_dir={out}"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"text", "embed_raw", "token_budget"}
    raw = next(r for r in rows if r["method"] == "embed_raw")
    assert raw["agree_with_text"] == 1.0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 18


def test_cli_bad_input_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "latentwire.cli", "eval", "data.source=jsonl",
                             f"data.path={tmp_path / 'missing.jsonl'}", "receivers=smollm2-135m"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "cannot read" in result.stderr
