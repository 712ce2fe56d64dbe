"""The lossless token path on tiny receivers (issue 18): encoder.kind=token_ids sends every context token as a
version 2 packet, each receiver reads it k tokens a position (k = 1: the text's own embeddings), trains on
ragged batches and answers from the packet."""
import json
import math
from dataclasses import replace

import pytest
import torch

from latentwire.data.loaders import load_examples
from latentwire.errors import CheckpointError, CodingError, ConfigError, PacketError
from latentwire.prompt import split_content
from latentwire.system import LatentWire, build_system
from latentwire.train.objective import batch_loss, batch_targets
from latentwire.train.tasks import task_of
from latentwire.train.trainer import reading_k, train
from latentwire.wire.shared_vocab import SharedVocabulary
from latentwire.wire.token_packet import is_version_2
from latentwire.wire.unigram import fit_unigram
from helpers import tiny_config
from tiny import CORPUS

EXAMPLES, _ = load_examples("squad", split="train", n=6, seed=2, max_context_chars=300)


@pytest.fixture(scope="module")
def table(pair, tmp_path_factory):
    vocabulary = SharedVocabulary.from_tokenizers(pair["a"].tokenizer, [pair["b"].tokenizer])
    path = tmp_path_factory.mktemp("unigram") / "tiny.json.gz"
    fit_unigram(vocabulary, CORPUS, progress=False).save(path)
    return path


def _config(tmp_path, table, *extra):
    return tiny_config(tmp_path, "token_ids", "encoder.input=context", "encoder.ks=[1,2,3]", f"encoder.unigram={table}",
                       "features.lora.enabled=true", "features.lora.rank=2", "loss.kd_weight=0", *extra)


def test_the_packet_carries_every_context_token_and_k1_reads_the_text_embeddings(tmp_path, pair, table):
    system = build_system(_config(tmp_path, table), pair)
    example = EXAMPLES[0]
    packet = system.encode(example.question, example.context)
    assert is_version_2(packet)       # (the tiny vocabulary does not compress SQuAD text: bytes are not checked here)
    carried = split_content(example.question, example.context, "context")[0]
    tokens = system.decode(packet)
    assert system.encoder.wire.vocabulary.decode(tokens.ids[0].tolist()) == carried
    system.k = 1
    for name, receiver in system.receivers.items():
        own = torch.tensor(system.encoder.wire.vocabulary.receiver_ids(receiver.tokenizer))[tokens.ids[0]]
        assert receiver.tokenizer.decode(own.tolist()) == carried
        torch.testing.assert_close(system.receiver_embeds(name, tokens)[0], receiver.embed(own[None])[0].float())
    system.k = 3
    assert system.receiver_embeds("a", tokens).shape[1] == -(-tokens.ids.shape[1] // 3)


def test_ragged_batches_train_every_k_and_another_coder_is_refused(tmp_path, pair, table):
    config = _config(tmp_path, table, "encoder.merge=mlp")
    system = build_system(config, pair)
    items, _ = task_of(config).build_items(EXAMPLES[:3], system, config, progress=False)
    lengths = {len(i.features) for i in items}
    assert len(lengths) > 1                                             # contexts of different lengths
    for k in (1, 2, 3):
        system.k = k
        system.zero_grad()
        loss, parts = batch_loss(system, items, config.loss)
        loss.backward()
        assert torch.isfinite(loss) and parts["a/ce"] > 0
        merge_grads = [p.grad for n, p in system.named_parameters() if "merges" in n and p.grad is not None]
        assert (len(merge_grads) > 0) == (k > 1)
    other = build_system(_config(tmp_path, table), pair)
    other.encoder.wire.id = b"\0\0\0\0"                          # as if coded under another table
    with pytest.raises(PacketError, match="coded with vocabulary/coder"):
        other.decode(system.encode("", EXAMPLES[0].context))


def test_self_distillation_teaches_a_merged_reading_from_the_same_reader_at_k1(tmp_path, pair, table):
    from latentwire.losses import kd_kl
    from latentwire.train.objective import batch_targets, self_teacher

    config = _config(tmp_path, table, "encoder.merge=mlp", "loss.self_kd_weight=0.5", "loss.span_tokens=6",
                     "loss.aux_objective=reconstruction", "loss.aux_share=0.5")
    system = build_system(config, pair)
    items, _ = task_of(config).build_items(EXAMPLES[:3], system, config, progress=False)
    targets, masks, after = batch_targets(system, items)
    system.k = 1
    reference = system([i.features for i in items], targets, after, ("own",))
    system.k, system.focus = 3, True
    taught = self_teacher(system, items, targets, after)
    assert (system.k, system.focus) == (3, True)                          # the step's reading is restored
    for name in pair:
        torch.testing.assert_close(taught[name]["own"], reference[name]["own"])
    loss, parts = batch_loss(system, items, config.loss)
    loss.backward()
    student = system([i.features for i in items], targets, after, ("own",))["a"]["own"]
    top_logits, top_ids = taught["a"]["own"].topk(config.loss.kd_top_k, dim=-1)
    expected = kd_kl(student, top_ids, top_logits, masks["a"], config.loss.kd_tau).item()
    assert parts["a/self_kd"] == pytest.approx(expected, rel=1e-4) and expected > 0
    system.k = 1
    assert "a/self_kd" not in batch_loss(system, items, config.loss)[1]      # at k = 1 the reader is its teacher
    system.k = 2
    with system.training_task("reconstruction"):
        span_items, _ = system.task.build_items(EXAMPLES[:3], system, config, progress=False)
        assert self_teacher(system, span_items, *batch_targets(system, span_items)[::2]) == {}   # QA steps only
    with pytest.raises(ConfigError, match="self_kd_weight applies to encoder.kind=token_ids"):
        tiny_config(tmp_path, "byte", "loss.self_kd_weight=1")


def test_state_alignment_compares_the_positions_after_the_latent_at_k_against_k1(tmp_path, pair, table):
    from latentwire.losses import state_alignment
    from latentwire.train.objective import batch_targets, self_teacher

    config = _config(tmp_path, table, "encoder.merge=mlp", "loss.self_states_weight=0.5")
    system = build_system(config, pair)
    items, _ = task_of(config).build_items(EXAMPLES[:3], system, config, progress=False)
    targets, masks, after = batch_targets(system, items)
    system.k = 1
    plain = system([i.features for i in items], targets, after, ("own",))
    read = system([i.features for i in items], targets, after, ("own",), states=True)
    for name, receiver in pair.items():
        states, suffix = read[name]["states"]
        torch.testing.assert_close(read[name]["own"], plain[name]["own"])       # the same reading, states beside it
        layers = receiver.model.config.num_hidden_layers
        assert states.shape[:3] == (layers, 3, suffix.shape[1]) and suffix.dtype == torch.bool
        lengths = [len(a) + len(system.builders[name].anchor_ids) + targets[name].shape[1] - 1 for a in after[name]]
        assert suffix.sum(1).tolist() == lengths and bool(suffix[:, -1].all())   # rows end together
        for row in range(3):   # a row's states do not depend on the rows padded beside it
            alone = system([items[row].features], {n: t[row:row + 1] for n, t in targets.items()},
                           {n: a[row:row + 1] for n, a in after.items()}, ("own",), states=True)[name]["states"][0]
            torch.testing.assert_close(states[:, row, -lengths[row]:], alone[:, 0, -lengths[row]:],
                                       atol=1e-4, rtol=1e-4)
        assert state_alignment(states, states, suffix).item() == pytest.approx(0, abs=1e-6)
    system.k = 3
    taught = self_teacher(system, items, targets, after, states=True)
    loss, parts = batch_loss(system, items, config.loss)
    loss.backward()
    merged = system([i.features for i in items], targets, after, ("own",), states=True)
    for name in pair:
        (student, suffix), teacher = merged[name]["states"], taught[name]["states"][0]
        expected = state_alignment(student, teacher, suffix).item()
        assert parts[f"{name}/self_states"] == pytest.approx(expected, rel=1e-4) and expected > 0
        assert f"{name}/self_kd" not in parts                                    # self_kd_weight stays off
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in system.adapters.parameters())
    system.k = 1
    assert "a/self_states" not in batch_loss(system, items, config.loss)[1]  # at k = 1 the reader is its teacher
    with pytest.raises(ConfigError, match="self_states_weight applies to encoder.kind=token_ids"):
        tiny_config(tmp_path, "byte", "loss.self_states_weight=1")


def test_state_alignment_is_in_units_of_the_teachers_spread_and_reads_only_masked_positions():
    from latentwire.losses import state_alignment

    teacher = torch.randn(2, 3, 4, 8)
    mask = torch.tensor([[True] * 4, [False, False, True, True], [True] * 4])
    spread = teacher[:, mask.bool()].std(1)                                       # [L, d]
    assert state_alignment(teacher, teacher, mask).item() == pytest.approx(0, abs=1e-6)
    off = teacher + spread[:, None, None]                                         # one spread in every dimension
    assert state_alignment(off, teacher, mask).item() == pytest.approx(1, rel=1e-4)
    scale = torch.rand(8) * 100 + 0.1                                             # per-dimension units do not matter
    assert state_alignment(off * scale, teacher * scale, mask).item() == pytest.approx(1, rel=1e-3)
    moved = off.clone()
    moved[:, 1, :2] = torch.randn(2, 2, 8)                                       # only masked-out positions
    assert state_alignment(moved, teacher, mask).item() == pytest.approx(1, rel=1e-4)


def test_training_resumes_and_the_model_answers_from_its_packet(tmp_path, pair, table):
    config = _config(tmp_path, table, "train.steps=3")
    checkpoint = train(config, progress=False, receivers=pair)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(r["loss"] > 0 for r in log[1:])
    model = LatentWire.from_pretrained(checkpoint, dict(pair))
    packet = model.encode("", EXAMPLES[1].context)
    assert isinstance(model.answer(packet, "b", EXAMPLES[1].question, max_new_tokens=3), str)
    assert [reading_k([1, 2, 3], 0, step) for step in range(6)] == [reading_k([1, 2, 3], 0, s) for s in range(6)]
    assert len({reading_k([1, 2, 3], 0, step) for step in range(30)}) == 3


def test_bad_token_reader_settings_are_refused(tmp_path, pair, table):
    for bad, match in (("encoder.ks=[5]", "encoder.ks"), ("encoder.merge=sum", "encoder.merge"),
                       ("features.deep_prefix.enabled=true", "LoRA only")):
        with pytest.raises(ConfigError, match=match):
            _config(tmp_path, table, bad)
    with pytest.raises(ConfigError, match="apply to encoder.kind=token_ids only"):
        tiny_config(tmp_path, "byte", "encoder.ks=[1]")
    with pytest.raises(CodingError, match="encoder.unigram"):
        build_system(tiny_config(tmp_path, "token_ids", "encoder.input=context"), pair)   # the shipped table


def test_two_resolution_steps_train_and_the_receiver_marks_the_same_tokens(tmp_path, pair, table):
    config = _config(tmp_path, table, "encoder.focus=1", "encoder.merge=mlp")
    system = build_system(config, pair)
    items, _ = task_of(config).build_items(EXAMPLES[:3], system, config, progress=False)
    assert all(i.features.shape[1] == 2 and i.features[:, 1].sum() > 0 for i in items)
    system.k = 3
    positions = {}
    for focus in (False, True):
        system.focus = focus
        z = system.latent([i.features for i in items])
        _, mask = system.receiver_inputs("a", z if focus else z.uniform())
        positions[focus] = mask.sum().item()
        system.zero_grad()
        loss, _ = batch_loss(system, items, config.loss)
        loss.backward()
        assert torch.isfinite(loss)
    assert positions[True] > positions[False]           # the focus sentences' tokens each take a position
    example = EXAMPLES[0]
    assert system.featurize(example.question, example.context).shape[1] == 1     # the sender marks nothing
    packet = system.encode(example.question, example.context)
    read = system.token_reading(system.decode(packet), example.question, True)
    assert read.focus[0].tolist() == items[0].features[:, 1].long().tolist()     # receiver == training marks
    assert system.token_reading(read, example.question, False).focus is None
    assert isinstance(system.answer(packet, "a", example.question, max_new_tokens=2), str)


def test_the_items_cache_knows_the_focus(tmp_path, table):
    from latentwire.train.features import items_key

    uniform = items_key(_config(tmp_path, table).to_dict())
    assert items_key(_config(tmp_path, table, "encoder.focus_share=0.2").to_dict()) == uniform
    focused = items_key(_config(tmp_path, table, "encoder.focus=1").to_dict())
    assert focused != uniform and focused != items_key(_config(tmp_path, table, "encoder.focus=2").to_dict())
    assert items_key(_config(tmp_path, table, "encoder.focus=1", "encoder.focus_scorer=minilm").to_dict()) != focused


def test_focus_steps_are_drawn_per_step_reproducibly():
    from latentwire.train.trainer import reading_focus

    drawn = [reading_focus(0.5, 0, step) for step in range(40)]
    assert drawn == [reading_focus(0.5, 0, step) for step in range(40)] and 5 < sum(drawn) < 35
    assert not any(reading_focus(0.0, 0, step) for step in range(40))


def test_eval_rows_per_k_and_at_two_resolutions(tmp_path, pair, table):
    from latentwire.eval.harness import run_method
    from latentwire.eval.methods import MethodContext
    from latentwire.prompt import PromptBuilder

    config = _config(tmp_path, table, "encoder.focus=1")
    system = build_system(config, pair).eval()
    builder = PromptBuilder(pair["a"].tokenizer, config.prompt, "a")
    examples = EXAMPLES[:3]
    rows = {}
    for method, k in (("latent_k", 1), ("latent_k", 3), ("latent_focus", 3)):
        ctx = MethodContext(pair["a"], builder, system=system, regime="context_only", k=k)
        run = run_method(ctx, examples, method, 2, 2, progress=False, timing_n=1, shuffle=False)
        rows[method, k] = run.row
        assert run.row["k"] == k and run.row["receiver_ms"] > 0 and run.row["wire_bytes"] > 0
    tokens = {key: row["prompt_tokens"] for key, row in rows.items()}
    assert tokens["latent_k", 3] < tokens["latent_focus", 3] < tokens["latent_k", 1]
    held = {key: row["context_positions"] for key, row in rows.items()}
    assert held["latent_k", 3] < held["latent_focus", 3] < held["latent_k", 1]
    assert tokens["latent_k", 1] - held["latent_k", 1] == pytest.approx(tokens["latent_k", 3] - held["latent_k", 3])
    lengths = [int(system.featurize("", e.context).shape[0]) for e in examples]     # T, the packet's tokens
    assert held["latent_k", 1] == pytest.approx(sum(lengths) / 3)
    assert held["latent_k", 3] == pytest.approx(sum(-(-t // 3) for t in lengths) / 3)
    assert rows["latent_k", 3]["text_context_positions"] > 0
    assert rows["latent_k", 1]["wire_bytes"] == rows["latent_k", 3]["wire_bytes"]    # one packet for every k
    wire = system.encoder.wire
    question = sum(len(wire.message(e.question)) for e in examples) / 3
    packets = sum(len(system.encode("", e.context)) for e in examples) / 3
    assert rows["latent_k", 1]["wire_bytes_coded_question"] == pytest.approx(packets + question)
    assert wire.read_message(wire.message(examples[0].question)) == examples[0].question
    ctx = MethodContext(pair["a"], builder, system=system, regime="question_aware", k=1)
    selected = run_method(ctx, examples, "latent_selected", 2, 2, progress=False, shuffle=False).row
    assert selected["wire_bytes"] < rows["latent_k", 1]["wire_bytes"]          # only the chosen sentence crosses
    assert selected["prompt_tokens"] < rows["latent_k", 1]["prompt_tokens"]
    with pytest.raises(ValueError, match="needs a token reader"):
        run_method(MethodContext(pair["a"], builder, k=2), examples, "latent_k", 2, 2, progress=False)


def test_a_shuffled_packet_is_read_for_the_receivers_own_question(tmp_path, pair, table):
    from latentwire.eval.controls import other_prompt
    from latentwire.eval.methods import METHODS, MethodContext
    from latentwire.prompt import PromptBuilder

    config = _config(tmp_path, table, "encoder.focus=1")
    system = build_system(config, pair).eval()
    builder = PromptBuilder(pair["a"].tokenizer, config.prompt, "a")
    ctx = MethodContext(pair["a"], builder, system=system, regime="context_only", k=3)
    prompts = [METHODS["latent_focus"].build(e, ctx) for e in EXAMPLES[:2]]
    assert torch.equal(prompts[0].read_for(EXAMPLES[0].question), prompts[0].latent_embeds)
    # receiver 1 holds packet 0 and marks its focus with its own question, not with question 0 (this one
    # picks another sentence of context 0 than question 0 does)
    question = "Who puts the pieces together by the process of closure?"
    shuffled = other_prompt(ctx, prompts, 1, question).latent_embeds
    packet = system.as_batch(system.decode(system.encode("", EXAMPLES[0].context)))
    expected = system.receiver_embeds("a", system.token_reading(packet, question, True), 3)[0]
    assert torch.allclose(shuffled, expected.to(shuffled.device))
    assert shuffled.shape != prompts[0].latent_embeds.shape or not torch.equal(shuffled, prompts[0].latent_embeds)


def test_the_curve_driver_picks_checkpoints_and_draws_what_ran(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("reader_curve", Path(__file__).parents[1] / "bench" / "reader_curve.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    for step in (50, 100, 150):
        (tmp_path / "run" / "checkpoints" / f"step-{step:06d}").mkdir(parents=True)
    assert [s for s, _ in driver.checkpoints(tmp_path / "run", 100)] == [100, 150]
    assert [s for s, _ in driver.checkpoints(tmp_path / "run", 100, [50])] == [50]
    with pytest.raises(ValueError, match=r"--steps 75: .* saved no such checkpoint \(it has 50, 100, 150\)"):
        driver.checkpoints(tmp_path / "run", 100, [75, 100])
    assert driver.newest_checkpoint(tmp_path / "run").name == "step-000150"
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "model.safetensors").write_bytes(b"")                # an exported state is its own
    assert driver.newest_checkpoint(tmp_path / "state") == tmp_path / "state"
    row = {"receiver": "a", "method": "latent_k", "k": 2, "n": 4, "f1": 0.1, "em": 0.0, "M": None}
    for folder, f1 in (("step-000100", 0.1), ("step-000150", 0.2), ("text", 0.3)):
        (tmp_path / "curve" / folder).mkdir(parents=True)
        record = dict(row, f1=f1, method="text" if folder == "text" else "latent_k")
        (tmp_path / "curve" / folder / "rows.jsonl").write_text(json.dumps(record) + "\n")
    rows = driver.collect(tmp_path / "curve")
    assert sorted((r["step"] or 0, r["f1"]) for r in rows) == [(0, 0.3), (100, 0.1), (150, 0.2)]
    driver.report(rows, tmp_path / "results", {"a": 0.4}, 0.85)
    assert driver.references(["a=0.4", "b=0.5"]) == {"a": 0.4, "b": 0.5}
    with pytest.raises(SystemExit):
        driver.references(["a:0.4"])
    assert (tmp_path / "results" / "reader_curve.png").stat().st_size > 0
    written = json.loads((tmp_path / "results" / "reader_curve.json").read_text())
    assert len(written["rows"]) == 3 and written["references"] == {"a": 0.4} and written["bar"] == 0.85
    later = [dict(row, f1=0.5, step=200), dict(row, f1=0.6, step=150)]   # a continuation's folders: 150, 200
    kept = driver.with_earlier(later, driver.earlier_rows(tmp_path / "results"))
    assert sorted((r["step"], r["f1"], r.get("earlier", False)) for r in kept) == [
        (100, 0.1, True), (150, 0.6, False), (200, 0.5, False)]           # text and step 150 not taken again
    assert driver.earlier_rows(tmp_path / "nothing-yet") == []
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "reader_curve.json").write_text('{"rows": [1]}')
    with pytest.raises(ValueError, match=r"broken/reader_curve.json: not a reader_curve.json"):
        driver.earlier_rows(tmp_path / "broken")
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000100"
    (checkpoint / "model.safetensors").write_bytes(b"other weights")    # rows of unrecorded weights
    assert driver.step_folder(tmp_path / "curve", 100, checkpoint) == tmp_path / "curve" / "step-000100"
    assert not (tmp_path / "curve" / "step-000100" / "rows.jsonl").exists()   # the old rows are not reused
    assert driver.step_folder(tmp_path / "curve", 100, checkpoint).is_dir()      # the same weights: kept
    import subprocess
    import sys
    bad = subprocess.run([sys.executable, Path(__file__).parents[1] / "bench" / "reader_curve.py", "--run",
                          tmp_path / "run", "--runs", tmp_path / "bad", "--results", tmp_path / "bad-results",
                          "--regime", "question_aware", "--set", "eval.max_position_share=2"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("reader_curve.py: ") and "max_position_share" in bad.stderr
    assert not (tmp_path / "bad-results").exists()                               # nothing reported
    bad = subprocess.run([sys.executable, Path(__file__).parents[1] / "bench" / "reader_curve.py", "--report",
                          "--keep-earlier", "--runs", tmp_path / "curve", "--results", tmp_path / "broken"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert (tmp_path / "broken" / "reader_curve.json").read_text() == '{"rows": [1]}'   # left as it was
    assert len(list((tmp_path / "curve").glob("stale-000100-*"))) == 1
    (checkpoint / "model.safetensors").write_bytes(b"newer weights")          # the run trained again
    driver.step_folder(tmp_path / "curve", 100, checkpoint)
    assert len(list((tmp_path / "curve").glob("stale-000100-*"))) == 2
    assert sorted(r["step"] or 0 for r in driver.collect(tmp_path / "curve")) == [0, 150]


def test_an_exported_state_continues_the_run_on_a_fresh_out_dir(tmp_path, pair, table):
    from latentwire.cli import main
    from latentwire.train.checkpoint import read_json, read_tensors

    first = train(_config(tmp_path / "a", table, "train.steps=2"), progress=False, receivers=pair)
    assert main(["export-state", str(first), str(tmp_path / "state")]) == 0
    assert all(v.dtype == torch.bfloat16 for v in read_tensors(tmp_path / "state" / "model.safetensors").values()
               if v.is_floating_point())
    config = _config(tmp_path / "b", table, "train.steps=3", f"train.continue_from={tmp_path / 'state'}")
    continued = train(config, progress=False, receivers=pair)
    log = [json.loads(line) for line in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [3] and read_json(continued / "state.json")["step"] == 3
    other = _config(tmp_path / "c", table, "train.steps=3", f"train.continue_from={tmp_path / 'state'}",
                    "encoder.merge=mlp_relative")
    with pytest.raises(CheckpointError, match="encoder.merge='weighted' there, 'mlp_relative' here"):
        train(other, progress=False, receivers=pair)
    with pytest.raises(ConfigError, match="exclude each other"):
        _config(tmp_path, table, "train.init_from=x", "train.continue_from=y")
    assert main(["export-state", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2


def test_an_exported_state_may_keep_only_the_ks_its_run_trained(tmp_path, pair, table, capsys):
    from latentwire.cli import main
    from latentwire.train.checkpoint import read_json, read_tensors

    run = train(_config(tmp_path / "a", table, "encoder.ks=[2,3]", "loss.ks=[2]", "encoder.merge=mlp",
                        "encoder.merge_layer=1", "encoder.layer_pool=mlp_relative", "train.steps=2"),
                progress=False, receivers=pair)
    assert main(["export-state", str(run), str(tmp_path / "all")]) == 0
    assert main(["export-state", str(run), str(tmp_path / "k2"), "--ks", "2"]) == 0
    every, kept = (read_tensors(tmp_path / name / "model.safetensors") for name in ("all", "k2"))
    assert any(".merges.3." in name for name in every) and any(".layer_merges.3." in name for name in every)
    assert set(kept) == {name for name in every if "merges.3." not in name}      # layer_merges.3 too
    assert all(torch.equal(kept[name], every[name]) for name in kept)
    assert read_json(tmp_path / "k2" / "config.json")["encoder"]["ks"] == [2]
    loaded = LatentWire.from_pretrained(tmp_path / "k2", dict(pair))            # exactly its tensors
    assert sorted(loaded.adapters["a"].reader.layer_merges) == ["2"]
    config = _config(tmp_path / "b", table, "encoder.ks=[2]", "loss.ks=[2]", "encoder.merge=mlp",
                     "encoder.merge_layer=1", "encoder.layer_pool=mlp_relative", "train.steps=3",
                     f"train.continue_from={tmp_path / 'k2'}")
    assert read_json(train(config, progress=False, receivers=pair) / "state.json")["step"] == 3
    capsys.readouterr()
    assert main(["export-state", str(run), str(tmp_path / "k4"), "--ks", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "export-state --ks 4: must be some of the k" in err
    assert not (tmp_path / "k4").exists()


def test_a_stage_may_add_lora_modules_to_a_loaded_reader_only_when_asked(tmp_path, pair, table):
    from latentwire.train.load import load_trained

    first = train(_config(tmp_path / "a", table, "train.steps=1"), progress=False, receivers=pair)
    grown = ("features.lora.targets=[q_proj,k_proj,v_proj,o_proj]", f"train.init_from={first}", "train.steps=1",
             "train.lr=0", "train.warmup=1")
    with pytest.raises(CheckpointError, match="does not fit this model: missing"):
        train(_config(tmp_path / "b", table, *grown), progress=False, receivers=pair)
    second = train(_config(tmp_path / "c", table, *grown, "train.init_new_lora=true"), progress=False,
                   receivers=pair)
    loaded, started = load_trained(first, dict(pair)).state_dict(), load_trained(second, dict(pair)).state_dict()
    added = sorted(set(started) - set(loaded))
    assert added and all("k_proj" in k or "o_proj" in k for k in added)
    assert all(not started[k].any() for k in added if "lora_B" in k)          # new modules start as identity
    for key, value in loaded.items():
        torch.testing.assert_close(started[key], value, msg=key)
    with pytest.raises(ConfigError, match="init_new_lora needs train.init_from"):
        _config(tmp_path, table, "train.init_new_lora=true")


def test_reader_settings_are_checked_before_any_row(tmp_path, pair, table):
    from latentwire.eval.harness import load_models

    checkpoint = train(_config(tmp_path, table, "train.steps=1"), progress=False, receivers=pair)
    config = _config(tmp_path, table, f"checkpoint={checkpoint}", "eval.methods=[latent_k]", "eval.ks=[4]")
    with pytest.raises(ValueError, match=r"eval.ks=\[4\]: this reader was trained for encoder.ks=\[1, 2, 3\]"):
        load_models(config, [("latent_k", 4)], dict(pair))
    for bad, match in (("encoder.focus=1 encoder.input=prompt", "needs encoder.input=context"),
                       ("encoder.bigram=x.json.gz", "encoder.bigram needs bigram")):
        with pytest.raises(ConfigError, match=match):
            _config(tmp_path, table, *bad.split())


def test_answers_of_other_weights_are_not_reused(tmp_path, pair, table):
    from latentwire.eval.harness import _memo_key
    from latentwire.eval.methods import MethodContext
    from latentwire.prompt import PromptBuilder

    config = _config(tmp_path, table)
    builder = PromptBuilder(pair["a"].tokenizer, config.prompt, "a")
    one, two = build_system(config, pair), build_system(_config(tmp_path, table, "train.seed=5"), pair)
    prompt = type("P", (), {"ids": None})()
    keys = [_memo_key(MethodContext(pair["a"], builder, system=s, k=2), EXAMPLES[0], prompt, "latent_k", {"k": 2})
            for s in (one, two)]
    assert keys[0] != keys[1] and keys[0] == _memo_key(MethodContext(pair["a"], builder, system=one, k=2),
                                                       EXAMPLES[0], prompt, "latent_k", {"k": 2})


def test_a_token_readers_eval_with_joint_scoring_on_writes_its_metrics(tmp_path, pair, table):
    from latentwire.eval.harness import evaluate

    checkpoint = train(_config(tmp_path, table, "train.steps=1"), progress=False, receivers=pair)
    config = _config(tmp_path, table, f"checkpoint={checkpoint}", "eval.methods=[latent_k]", "eval.ks=[2]",
                     "data.n=2", "eval.joint=true", "eval.shuffle_test=false", f"eval.out_dir={tmp_path / 'ev'}")
    rows = evaluate(config, progress=False, receivers=dict(pair))     # no `latent` rows: nothing to rescore
    assert {r["method"] for r in rows} >= {"latent_k"} and (tmp_path / "ev" / "metrics.json").is_file()


def test_an_aux_task_trains_on_its_share_of_the_steps_with_its_own_prompt(tmp_path, pair, table):
    from latentwire.train.trainer import step_task

    config = _config(tmp_path, table, "train.steps=6", "loss.aux_objective=reconstruction", "loss.aux_share=0.5",
                     "loss.span_tokens=6", "train.log_every=1", "encoder.focus=1", "loss.aux_ks=[3]",
                     "loss.ks=[1,2]")
    drawn = [step_task(config, step) for step in range(40)]
    assert drawn == [step_task(config, step) for step in range(40)] and set(drawn) == {"qa", "reconstruction"}
    system = build_system(config, pair)
    with system.training_task("reconstruction"):
        assert "Repeat the text word for word." in system.builders["a"].prefix_text
    assert system.task.name == "qa" and config.prompt.instruction in system.builders["a"].prefix_text
    train(config, progress=False, receivers=pair)
    run = tmp_path / "run"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()][1:]
    assert [r["task"] for r in log] == drawn[:6] and all(r["loss"] > 0 for r in log)
    assert all(r["k"] == 3 for r in log if r["task"] == "reconstruction")        # loss.aux_ks: the aux steps' k
    assert [reading_k([1, 2], config.train.seed, s) for s in range(6) if drawn[s] == "qa"] == [
        r["k"] for r in log if r["task"] == "qa"]                                  # loss.ks: the QA steps' k
    assert (run / "features").is_dir() and (run / "features-reconstruction").is_dir()
    for bad, match in (("loss.aux_objective=qa", "aux_objective"), ("loss.aux_objective=dream", "aux_objective"),
                       ("loss.aux_share=0.3", "needs loss.aux_objective"),
                       ("loss.aux_ks=[2]", "aux_ks needs loss.aux_objective")):
        with pytest.raises(ConfigError, match=match):
            _config(tmp_path, table, bad)
    with pytest.raises(ConfigError, match="aux_share must be in"):
        _config(tmp_path, table, "loss.aux_objective=reconstruction", "loss.aux_share=1")
    with pytest.raises(ConfigError, match="aux_ks must be values of encoder.ks"):
        _config(tmp_path, table, "loss.aux_objective=reconstruction", "loss.aux_share=0.5", "loss.aux_ks=[4]")
    with pytest.raises(ConfigError, match="loss.ks must be values of encoder.ks"):
        _config(tmp_path, table, "loss.ks=[4]")


def test_question_aware_items_read_the_selected_sentence_and_skip_answers_outside_it(tmp_path, pair, table):
    from latentwire.data.examples import QAExample
    from latentwire.train.objective import batch_targets, self_teacher
    from latentwire.train.tasks import TASKS

    context = "Paris is the capital of France. The river Seine runs through it. Berlin is in Germany."
    examples = [QAExample("river", "Which river runs through Paris?", context, ("Seine",)),
                QAExample("capital", "What is the capital of France?", context, ("Berlin", "Paris")),
                QAExample("outside", "Which river runs through Paris?", context, ("Germany",))]
    config = _config(tmp_path, table, "encoder.merge=mlp", "loss.self_kd_weight=0.5", "train.steps=2",
                     "loss.aux_objective=qa_selected", "loss.aux_share=0.5", "train.log_every=1")
    system = build_system(config, pair)
    items, report = TASKS["qa_selected"].build_items(examples, system, config, progress=False)
    assert [(i.example.id, i.example.context, i.example.answers) for i in items] == [
        ("river", "The river Seine runs through it.", ("Seine",)),
        ("capital", "Paris is the capital of France.", ("Paris",))]     # only the answers the sentence holds
    assert report.kept == 2 and dict(report.skipped) == {"answer not in the selected sentences": 1}
    for item in items:
        torch.testing.assert_close(item.features, system.featurize(item.example.question, item.example.context))
    with system.training_task("qa_selected"):
        system.k = 2
        targets, _, after = batch_targets(system, items)
        assert set(self_teacher(system, items, targets, after)) == set(pair)     # a QA task: the k = 1 teacher
    train(config, progress=False, receivers=pair)
    assert (tmp_path / "run" / "features-qa_selected" / "items.json").is_file()


def test_a_receiver_the_checkpoint_has_no_reader_for_is_refused_before_any_model_loads(tmp_path, pair, table,
                                                                                         monkeypatch):
    from latentwire.eval import harness
    from latentwire.train.load import reader_names

    checkpoint = train(_config(tmp_path, table, "train.steps=1"), progress=False, receivers=pair)
    config = _config(tmp_path, table, f"checkpoint={checkpoint}", "eval.methods=[latent_k]", "eval.ks=[2]",
                     "receivers=[{name: c, model: x}]", f"eval.out_dir={tmp_path / 'other'}")

    def no_loading(*args, **kwargs):
        raise AssertionError("a model loaded before the receivers were checked")

    assert reader_names(checkpoint) == ["a", "b"]
    monkeypatch.setattr(harness, "load_receiver", no_loading)
    monkeypatch.setattr(harness, "load_trained", no_loading)
    with pytest.raises(ConfigError, match=r"has readers for a, b only, not for c"):
        harness.evaluate(config, progress=False, receivers={})
    assert not (tmp_path / "other").exists()
    (checkpoint / "config.json").write_text('{"receivers": [{"nme": "a"}]}')          # an unknown key
    with pytest.raises(CheckpointError, match=r"config.json: "):
        reader_names(checkpoint)


def test_a_token_readers_prompt_prefix_is_read_from_a_cache_under_its_lora(tmp_path, pair, table):
    from latentwire.eval.generation import greedy_decode
    from latentwire.eval.harness import run_method
    from latentwire.eval.methods import METHODS, MethodContext
    from latentwire.eval.timing import PrefixCache
    from latentwire.prompt import PromptBuilder

    system = build_system(_config(tmp_path, table), pair).eval()
    for p in system.features.parameters():      # LoRA B starts at zero: make the adapter change the answer
        torch.nn.init.normal_(p, std=0.05)
    builder = PromptBuilder(pair["a"].tokenizer, system.config.prompt, "a")
    ctx = MethodContext(pair["a"], builder, system=system, regime="context_only", k=2)
    prompt = METHODS["latent_k"].build(EXAMPLES[0], ctx)
    whole = greedy_decode(pair["a"], [prompt], 1, builder.stop_ids, builder.pad_id, system.features).first_logits[0]
    plain = greedy_decode(pair["a"], [prompt], 1, builder.stop_ids, builder.pad_id).first_logits[0]
    assert not torch.allclose(whole, plain, atol=1e-4)          # LoRA acts on this prompt
    cache = PrefixCache(pair["a"], builder, system.features)
    assert cache.holds(prompt)
    torch.testing.assert_close(cache.first_logits(prompt), whole, rtol=1e-4, atol=1e-4)
    row = run_method(ctx, EXAMPLES[:2], "latent_k", 2, 2, progress=False, timing_n=2, shuffle=False,
                     prefix_cache=True).row
    assert row["prefix_cached_n"] == 2 and row["receiver_ms"] > 0


def test_a_token_readers_lora_folded_into_the_weights_reads_the_same_and_leaves_them_as_they_were(
        tmp_path, pair, table):
    from latentwire.eval.generation import greedy_decode
    from latentwire.eval.harness import run_method
    from latentwire.eval.methods import METHODS, MethodContext
    from latentwire.eval.timing import first_token_timing
    from latentwire.prompt import PromptBuilder

    system = build_system(_config(tmp_path, table), pair).eval()
    for p in system.features.parameters():      # LoRA B starts at zero: make the adapter change the answer
        torch.nn.init.normal_(p, std=0.05)
    receiver, builder = pair["a"], PromptBuilder(pair["a"].tokenizer, system.config.prompt, "a")
    ctx = MethodContext(receiver, builder, system=system, regime="context_only", k=2)
    prompt = METHODS["latent_k"].build(EXAMPLES[0], ctx)

    def first(features):
        return greedy_decode(receiver, [prompt], 1, builder.stop_ids, builder.pad_id, features).first_logits[0]

    before = {k: v.clone() for k, v in receiver.model.state_dict().items()}
    read, frozen = first(system.features), first(None)
    with system.features.folded("a"):
        changed = any(not torch.equal(v, before[k]) for k, v in receiver.model.state_dict().items())
        torch.testing.assert_close(first(system.features), read, rtol=1e-4, atol=1e-4)   # LoRA, now in W
        torch.testing.assert_close(first(None), read, rtol=1e-4, atol=1e-4)              # so even unswitched
        with system.features.plain("a"):
            torch.testing.assert_close(first(None), frozen, rtol=1e-4, atol=1e-4)        # plain is still frozen
    assert changed and not torch.allclose(read, frozen, atol=1e-4)
    assert all(torch.equal(v, before[k]) for k, v in receiver.model.state_dict().items())  # exactly as before
    torch.testing.assert_close(first(system.features), read, rtol=1e-5, atol=1e-5)
    seconds, hits = first_token_timing(receiver, builder, [prompt.receive], system.features, True, fold=True)
    assert len(seconds) == 1 and hits == 1
    assert all(torch.equal(v, before[k]) for k, v in receiver.model.state_dict().items())
    row = run_method(ctx, EXAMPLES[:2], "latent_k", 2, 2, progress=False, timing_n=2, shuffle=False,
                     fold_weights=True).row
    assert row["weights_folded"] and row["receiver_ms"] > 0
    text = run_method(MethodContext(receiver, builder), EXAMPLES[:2], "text", 2, 2, progress=False, timing_n=2,
                      fold_weights=True).row
    assert not text["weights_folded"]


def test_a_stage_may_start_another_merge_on_a_loaded_readers_lora(tmp_path, pair, table):
    from latentwire.train.load import load_trained

    first = train(_config(tmp_path / "a", table, "encoder.merge=mlp", "train.steps=1"), progress=False,
                  receivers=pair)
    other = ("encoder.merge=weighted", f"train.init_from={first}", "train.steps=1", "train.lr=0", "train.warmup=1")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        train(_config(tmp_path / "b", table, *other), progress=False, receivers=pair)
    with pytest.raises(CheckpointError, match="init_fresh prefix 'nowhere.' names no tensor"):
        train(_config(tmp_path / "c", table, *other, "train.init_fresh=[nowhere.]"), progress=False, receivers=pair)
    second = train(_config(tmp_path / "d", table, *other, "train.init_fresh=[adapters.]"), progress=False,
                   receivers=pair)
    loaded, started = load_trained(first, dict(pair)).state_dict(), load_trained(second, dict(pair)).state_dict()
    merges = [k for k in started if k.startswith("adapters.")]
    assert merges and all(k.endswith(".weight") and "merges" in k for k in merges)
    for key in merges:                                         # a weighted merge starts as the group mean
        k = started[key].shape[0]
        torch.testing.assert_close(started[key], torch.full_like(started[key], 1.0 / k), msg=key)
    lora = [k for k in loaded if "lora_" in k]
    assert lora and all(torch.equal(started[k], loaded[k]) for k in lora)
    with pytest.raises(ConfigError, match="init_fresh needs train.init_from"):
        _config(tmp_path, table, "train.init_fresh=[adapters.]")


def test_salient_rows_read_in_a_uniform_ks_positions_and_are_checked(tmp_path, pair, table):
    from latentwire.config import load_config
    from latentwire.eval.harness import load_models, method_grid, run_method
    from latentwire.eval.methods import MethodContext
    from latentwire.prompt import PromptBuilder

    config = _config(tmp_path, table)
    system = build_system(config, pair).eval()
    builder = PromptBuilder(pair["a"].tokenizer, config.prompt, "a")
    examples = EXAMPLES[:3]
    rows = {}
    for method, k in (("latent_k", 2), ("latent_k", 3), ("latent_salient", 2)):
        ctx = MethodContext(pair["a"], builder, system=system, regime="context_only", k=k, salient_run_k=3)
        rows[method, k] = run_method(ctx, examples, method, 2, 2, progress=False, shuffle=False).row
    held = {key: row["context_positions"] for key, row in rows.items()}
    assert held["latent_k", 3] < held["latent_salient", 2] <= held["latent_k", 2]
    assert rows["latent_salient", 2]["k"] == 2
    assert rows["latent_salient", 2]["wire_bytes"] == rows["latent_k", 2]["wire_bytes"]
    assert method_grid(load_config(None, ["eval.methods=[latent_salient]", "eval.ks=[1,2]"])) == [("latent_salient", 2)]
    with pytest.raises(ConfigError, match="salient_run_k"):
        load_config(None, ["eval.methods=[latent_salient]", "eval.ks=[2,4]", "eval.salient_run_k=3"])
    checkpoint = train(_config(tmp_path / "run", table, "train.steps=1"), progress=False, receivers=pair)
    wrong = _config(tmp_path, table, f"checkpoint={checkpoint}", "eval.methods=[latent_salient]", "eval.ks=[2]",
                    "eval.salient_run_k=4")
    with pytest.raises(ValueError, match="salient_run_k"):
        load_models(wrong, method_grid(wrong), dict(pair))


def _layered_setup(tmp_path, pair, table, k):
    from latentwire.eval.methods import MethodContext
    from latentwire.prompt import PromptBuilder

    system = build_system(_config(tmp_path, table), pair).eval()
    for p in system.features.parameters():      # LoRA B starts at zero: make the adapter change the answer
        torch.nn.init.normal_(p, std=0.05)
    builder = PromptBuilder(pair["a"].tokenizer, system.config.prompt, "a")
    return system, builder, MethodContext(pair["a"], builder, system=system, regime="context_only", k=k,
                                          merge_layer=1)


def test_a_layered_reading_at_k1_puts_in_the_states_the_reading_itself_has(tmp_path, pair, table):
    """At k = 1 the pooled states are the context's own states at the layer, so a layered reading answers
    exactly as the plain one, also in a left-padded batch of two lengths (each row's states at its own place)."""
    from latentwire.eval.generation import greedy_decode
    from latentwire.eval.methods import METHODS

    from latentwire.adapters.layer_merge import context_layer_states

    system, builder, ctx = _layered_setup(tmp_path, pair, table, 1)
    plain = [METHODS["latent_k"].build(e, ctx) for e in EXAMPLES[:2]]
    assert METHODS["latent_deep"].build(EXAMPLES[0], ctx).layer_states is None     # k = 1 reads no layer states
    prefix = pair["a"].embed(torch.tensor([builder.prefix_ids]))[0]
    with system.features.reading("a", prefix[None, :0]):
        deep = [replace(p, layer_states=context_layer_states(pair["a"].model, prefix, p.latent_embeds, 1, 1))
                for p in plain]
    assert deep[0].length != deep[1].length
    assert deep[0].layer_states.states.shape == deep[0].latent_embeds.shape
    decode = lambda prompts: greedy_decode(pair["a"], prompts, 1, builder.stop_ids, builder.pad_id,  # noqa: E731
                                           system.features).first_logits
    torch.testing.assert_close(decode(deep), decode(plain), rtol=1e-4, atol=1e-4)
    moved = [replace(p, layer_states=replace(p.layer_states, start=p.layer_states.start + 1)) for p in deep]
    assert not torch.allclose(decode(moved), decode(plain), atol=1e-3)    # states in the wrong place show


def test_a_layered_reading_at_k2_reads_pooled_states_and_is_timed_and_controlled(tmp_path, pair, table):
    from latentwire.adapters.layer_merge import pooled_states
    from latentwire.eval.generation import greedy_decode
    from latentwire.eval.harness import run_method
    from latentwire.eval.methods import METHODS
    from latentwire.eval.timing import PrefixCache

    states = torch.arange(10.0).reshape(5, 2)
    torch.testing.assert_close(pooled_states(states, 2), torch.tensor([[1.0, 2.0], [5.0, 6.0], [8.0, 9.0]]))
    system, builder, ctx = _layered_setup(tmp_path, pair, table, 2)
    deep = METHODS["latent_deep"].build(EXAMPLES[0], ctx)
    merged = METHODS["latent_k"].build(EXAMPLES[0], ctx)
    assert deep.layer_states.states.shape == merged.latent_embeds.shape == deep.latent_embeds.shape
    decode = lambda prompt: greedy_decode(pair["a"], [prompt], 1, builder.stop_ids, builder.pad_id,  # noqa: E731
                                          system.features).first_logits[0]
    assert not torch.allclose(decode(deep), decode(merged), atol=1e-4)
    torch.testing.assert_close(PrefixCache(pair["a"], builder, system.features).first_logits(deep), decode(deep),
                               rtol=1e-4, atol=1e-4)
    row = run_method(ctx, EXAMPLES[:3], "latent_deep", 2, 2, progress=False, timing_n=2, shuffled_f1=True,
                     prefix_cache=True).row
    assert row["merge_layer"] == 1 and row["prefix_cached_n"] == 2 and "f1_shuffled" in row
    with pytest.raises(ConfigError, match="eval.merge_layer=2: .* 2 decoder layers; allowed 1 to 1"):
        METHODS["latent_deep"].build(EXAMPLES[0], replace(ctx, merge_layer=2))
    from latentwire.config import load_config
    with pytest.raises(ConfigError, match="eval.merge_layer must be >= 1"):
        load_config(None, ["eval.merge_layer=0"])


def test_a_reader_that_merges_from_a_layer_trains_so_and_its_rows_read_so(tmp_path, pair, table):
    from latentwire.eval.harness import run_method
    from latentwire.eval.methods import METHODS, MethodContext
    from latentwire.prompt import PromptBuilder

    with pytest.raises(ConfigError, match="encoder.merge_layer"):
        _config(tmp_path, table, "encoder.merge_layer=1", "encoder.focus=1", "encoder.focus_share=0.5")
    with pytest.raises(ConfigError, match="encoder.merge_layer=2: .* 2 decoder layers"):
        build_system(_config(tmp_path, table, "encoder.merge_layer=2"), pair)
    config = _config(tmp_path / "run", table, "encoder.merge_layer=1", "encoder.ks=[2]", "train.steps=2")
    checkpoint = train(config, progress=False, receivers=pair)
    system = LatentWire.from_pretrained(checkpoint, dict(pair)).eval()
    assert system.config.encoder.merge_layer == 1
    items, _ = task_of(config).build_items(EXAMPLES[:2], system, config, progress=False)
    targets, _, after = batch_targets(system, items)
    with torch.no_grad():
        layered = system([i.features for i in items], targets, after)
        system.config.encoder.merge_layer = 0
        merged = system([i.features for i in items], targets, after)
        system.config.encoder.merge_layer = 1
    for name in ("a", "b"):       # the training forward reads the pooled states from layer 1 on
        assert not torch.allclose(layered[name]["own"], merged[name]["own"], atol=1e-4)
    builder = PromptBuilder(pair["a"].tokenizer, config.prompt, "a")
    ctx = MethodContext(pair["a"], builder, system=system, regime="context_only", k=2)
    assert METHODS["latent_k"].build(EXAMPLES[0], ctx).layer_states.layer == 1      # its rows read as it trained
    assert run_method(ctx, EXAMPLES[:2], "latent_k", 2, 2, progress=False, shuffle=False).row["merge_layer"] == 1
    with pytest.raises(ValueError, match="encoder.merge_layer"):
        METHODS["latent_focus"].build(EXAMPLES[0], ctx)


def test_a_learned_layer_pool_starts_as_the_mean_trains_and_loads_onto_a_mean_readers_weights(tmp_path, pair,
                                                                                               table):
    from latentwire.adapters.token_merge import masked_mean
    with pytest.raises(ConfigError, match="encoder.layer_pool must be mean, weighted, mlp or mlp_relative"):
        _config(tmp_path, table, "encoder.merge_layer=1", "encoder.layer_pool=max")
    with pytest.raises(ConfigError, match="encoder.layer_pool .* only with encoder.merge_layer >= 1"):
        _config(tmp_path, table, "encoder.layer_pool=mlp_relative")
    mean_run = train(_config(tmp_path / "mean", table, "encoder.merge_layer=1", "encoder.ks=[2,3]", "train.steps=2"),
                     progress=False, receivers=pair)
    with pytest.raises(ConfigError, match="encoder.pool_hidden must be >= 1"):
        _config(tmp_path, table, "encoder.merge_layer=1", "encoder.layer_pool=mlp_relative", "encoder.pool_hidden=0")
    config = _config(tmp_path / "pool", table, "encoder.merge_layer=1", "encoder.layer_pool=mlp_relative",
                     "encoder.ks=[2,3]", "train.steps=0", "encoder.pool_hidden=24")
    system = build_system(config, pair)
    reader = system.adapters["a"].reader
    assert sorted(reader.layer_merges) == ["2", "3"]
    assert reader.layer_merges["2"].net[0].out_features == 24
    members = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [0, 0, 0]]).repeat(2, 1, 1)
    groups = torch.randn(2, 4, 3, 8)
    pool = type(reader)(torch.nn.Embedding(5, 8), "mlp", (2, 3), 16, "mlp_relative")
    torch.testing.assert_close(pool.pool_states(groups, members), masked_mean(groups, members))    # at start
    torch.nn.init.normal_(pool.layer_merges["2"].net[-1].weight)
    moved = pool.pool_states(groups, members)
    assert not torch.allclose(moved[:, 0], groups[:, 0, :2].mean(1))                              # a pair: learned
    torch.testing.assert_close(moved[:, 1:], masked_mean(groups, members)[:, 1:])                  # 3 and 1: not yet
    items, _ = task_of(config).build_items(EXAMPLES[:2], system, config, progress=False)
    targets, _, after = batch_targets(system, items)
    system.k = 2
    loss = sum(out["own"].float().logsumexp(-1).mean() for out in system([i.features for i in items], targets,
                                                                         after).values())
    loss.backward()
    assert reader.layer_merges["2"].net[-1].weight.grad.abs().sum() > 0       # the pool learns through the reading
    trained = train(replace(config, train=replace(config.train, steps=2, init_from=str(mean_run),
                                                  init_fresh=["adapters.a.reader.layer_merges",
                                                              "adapters.b.reader.layer_merges"])),
                    progress=False, receivers=pair)
    loaded = LatentWire.from_pretrained(trained, dict(pair))
    assert "layer_merges" in str(loaded.state_dict().keys())
    assert loaded.adapters["b"].reader.layer_merges["3"].net[0].out_features == 24     # the width it trained with


def test_a_run_may_train_some_receivers_readers_and_keep_the_others_as_loaded(tmp_path, pair, table):
    with pytest.raises(ConfigError, match=r"train.readers must name distinct receivers of this run \(a, b\)"):
        _config(tmp_path, table, "train.readers=[c]")
    joint = train(_config(tmp_path / "joint", table, "encoder.ks=[2]", "train.steps=2"), progress=False,
                  receivers=pair)
    config = _config(tmp_path / "one", table, "encoder.ks=[2]", "train.steps=2", f"train.init_from={joint}",
                     "train.readers=[a]", "train.lr=0.01")
    trained = LatentWire.from_pretrained(train(config, progress=False, receivers=pair), dict(pair))
    assert trained.trained == ["a", "b"]     # the model it wrote reads with both readers
    names = {id(p): name for name, p in trained.named_parameters()}
    owned = {r: {names[id(p)] for p in trained.receiver_parameters(r)} for r in "ab"}   # what train.readers freezes
    assert all(f".{r}." in name for r in "ab" for name in owned[r]) and not owned["a"] & owned["b"]
    assert {n for n in names.values() if n.startswith(("adapters.", "features."))} == owned["a"] | owned["b"]
    after = trained.state_dict()
    before = LatentWire.from_pretrained(joint, dict(pair)).state_dict()
    assert before.keys() == after.keys()
    for key in before:               # b's reader and LoRA as loaded; a's trained on
        assert torch.equal(before[key], after[key]) == (".b." in key), key
    logged = [json.loads(line) for line in open(tmp_path / "one" / "run" / "log.jsonl") if '"step"' in line]
    assert any("a/ce" in row for row in logged) and not any(key.startswith("b/") for row in logged for key in row)


def test_a_position_budget_caps_merged_readings_in_balanced_groups(tmp_path, pair, table):
    """eval.max_position_share: a merged reading whose ceil(T / k) positions exceed the share of the positions
    its text takes in the receiver's text prompt takes that many positions instead (groups of k and k + 1, layer
    states pooled over the same groups); one that fits reads as without the budget; k = 1 is never merged."""
    from latentwire.adapters.layer_merge import context_layer_states, states_after
    from latentwire.adapters.token_merge import balanced_layout
    from latentwire.config import load_config
    from latentwire.eval.harness import run_method
    from latentwire.eval.methods import METHODS

    system, builder, ctx = _layered_setup(tmp_path, pair, table, 2)
    ctx = replace(ctx, leave_out=())             # merging alone (the leave-out rules: the test below)
    example = EXAMPLES[0]
    carried, after = split_content(example.question, example.context, "context")
    own = builder.text_positions(carried, after)
    plain = METHODS["latent_k"].build(example, ctx)
    beside = plain.length - plain.latent_embeds.shape[0]            # what the latent's prompt holds beside it
    assert METHODS["text"].build(example, ctx).length - beside == own
    capped = METHODS["latent_k"].build(example, replace(ctx, max_position_share=0.4))
    assert capped.latent_embeds.shape[0] == int(0.4 * own) < plain.latent_embeds.shape[0]
    deep = METHODS["latent_deep"].build(example, replace(ctx, max_position_share=0.4))
    assert deep.layer_states.states.shape == capped.latent_embeds.shape
    prefix = pair["a"].embed(torch.tensor([builder.prefix_ids]))[0]
    tokens = torch.randn(7, prefix.shape[1]) * prefix.std()
    with torch.no_grad():
        full = states_after(pair["a"].model, torch.cat([prefix, tokens])[None], 1)[0, prefix.shape[0]:]
        pooled = context_layer_states(pair["a"].model, prefix, tokens, 2, 1, balanced_layout([7], [3])[0]).states
    torch.testing.assert_close(pooled, torch.stack([full[:3].mean(0), full[3:5].mean(0), full[5:].mean(0)]))
    roomy = replace(ctx, k=3, max_position_share=1.0)
    torch.testing.assert_close(METHODS["latent_k"].build(example, roomy).latent_embeds,
                               METHODS["latent_k"].build(example, replace(roomy, max_position_share=0)).latent_embeds)
    at_k1 = [METHODS["latent_k"].build(example, replace(ctx, k=1, max_position_share=share)) for share in (0, 0.4)]
    torch.testing.assert_close(at_k1[0].latent_embeds, at_k1[1].latent_embeds)
    rows = [run_method(replace(ctx, max_position_share=share), EXAMPLES[:2], "latent_k", 2, 2, progress=False,
                       shuffle=False).row for share in (0, 0.4)]
    assert "max_position_share" not in rows[0] and rows[1]["max_position_share"] == 0.4
    assert rows[1]["context_positions"] < rows[0]["context_positions"]
    asked = replace(ctx, regime="question_aware")
    selected = [run_method(replace(asked, max_position_share=share), EXAMPLES[:2], "latent_selected", 2, 2,
                           progress=False, shuffle=False).row for share in (0, 0.4)]
    assert selected[1]["max_position_share"] == 0.4
    assert selected[1]["context_positions"] < selected[0]["context_positions"]
    with pytest.raises(ConfigError, match="eval.max_position_share must be in \\[0, 1\\]"):
        load_config(None, ["eval.max_position_share=1.5"])


def test_a_budget_leaves_out_the_label_and_end_mark_before_it_merges(tmp_path, pair, table):
    """Within eval.max_position_share the receiver first leaves out the packet's context label (whole) and its
    closing mark, then (by default) its most predictable tokens: a budget the first two meet reads the rest in
    uniform pairs, a tighter one reads fewer tokens, still in pairs; eval.leave_out=[] merges the whole packet
    in groups of k and k + 1; rows say which rules they read with."""
    from latentwire.eval.harness import run_method
    from latentwire.eval.methods import METHODS, _budgeted
    from latentwire.prompt import CONTEXT_LABEL

    system, builder, ctx = _layered_setup(tmp_path, pair, table, 2)
    vocabulary = system.encoder.wire.vocabulary
    label = vocabulary.encode(CONTEXT_LABEL)
    packets = {e.id: system.as_batch(system.decode(system.encode(e.question, e.context))) for e in EXAMPLES}
    # a packet of odd length T ending in ".": its label and mark must both go to save two positions
    example = next(e for e in EXAMPLES if packets[e.id].ids.shape[1] % 2 and e.context.rstrip().endswith("."))
    z, (carried, after) = packets[example.id], split_content(example.question, example.context, "context")
    ids = z.ids[0].tolist()
    assert ids[:len(label)] == label and vocabulary.decode(ids[-1:]) == "."
    own = builder.text_positions(carried, after)
    share = (math.ceil(len(ids) / 2) - 2 + 0.5) / own          # two positions short of the plain pairs
    marks_only = replace(ctx, max_position_share=share, leave_out=("label", "end_mark"))
    read = _budgeted(marks_only, after)(z, example.question)
    assert read.layout is None and read.ids[0].tolist() == ids[len(label):-1]
    merged = _budgeted(replace(ctx, max_position_share=share, leave_out=()), after)(z, example.question)
    assert merged.ids[0].tolist() == ids and merged.layout is not None
    assert merged.layout.shape[1] == int(share * own)
    built = METHODS["latent_k"].build(example, replace(ctx, max_position_share=share))
    assert built.latent_embeds.shape[0] == math.ceil((len(ids) - len(label) - 1) / 2)
    tighter = _budgeted(replace(ctx, max_position_share=share * 0.8), after)(z, example.question)
    assert tighter.layout is None and tighter.ids.shape[1] <= 2 * int(share * 0.8 * own)   # predictable ones go
    row = run_method(replace(ctx, max_position_share=share), EXAMPLES[:2], "latent_k", 2, 2, progress=False,
                     shuffle=False).row
    assert row["leave_out"] == ["label", "end_mark", "predictable"]


def test_the_leave_out_aids_know_the_marks_without_decoding_a_packet_piece_alone(tmp_path, pair, table):
    """A packet that ends in a piece of a multi-byte character is read within a budget without an error (the
    end marks are known as ids), one that ends in "." loses it; the answer memo tells the rules apart."""
    from latentwire.adapters.position_budget import ReadingAids, end_mark_groups
    from latentwire.eval.harness import _memo_key
    from latentwire.eval.methods import METHODS, _budgeted
    from latentwire.prompt import CONTEXT_LABEL

    system, builder, ctx = _layered_setup(tmp_path, pair, table, 2)
    vocabulary = system.encoder.wire.vocabulary
    aids = ReadingAids.of(vocabulary, system.encoder.wire.table, CONTEXT_LABEL)
    for ending, marked in (("Café 日本", False), ("“yes”", False), ("said yes.", True)):
        ids = vocabulary.encode(f"{CONTEXT_LABEL} The answer, {ending}")
        assert bool(end_mark_groups(ids, aids)) == marked
        z = system.as_batch(system.decode(system.encode("What?", f"The answer, {ending}")))
        read = _budgeted(replace(ctx, max_position_share=0.3), "\nQuestion: What?")(z, "What?")
        assert read.ids.shape[1] < z.ids.shape[1]
    example = EXAMPLES[0]
    budgeted = replace(ctx, max_position_share=0.4)
    prompt = METHODS["latent_k"].build(example, budgeted)
    keys = {_memo_key(replace(budgeted, leave_out=rules), example, prompt, "latent_k", {"k": 2})
            for rules in ((), ("label", "end_mark"), ("label", "end_mark", "predictable"))}
    assert len(keys) == 3
