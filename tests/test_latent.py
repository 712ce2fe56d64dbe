"""The interlingua on tiny random receivers: encoders, adapters, losses, KD positions, training, eval."""
import json

import pytest
import torch

from latentwire.adapters import Adapter
from latentwire.config import LossConfig, PromptConfig
from latentwire.data.loaders import load_examples
from latentwire.encoders import ENCODERS
from latentwire.encoders.blocks import pad_features
from latentwire.eval.harness import evaluate
from latentwire.latent_inputs import answer_logits, latent_prompt_embeds
from latentwire.losses import k_token_ce, kd_kl
from latentwire.prompt import PromptBuilder, format_content
from latentwire.train.checkpoint import CheckpointError
from latentwire.train.features import build_items, load_items, save_items, teacher_top_k
from latentwire.train.load import load_trained
from latentwire.train.objective import batch_loss
from latentwire.system import build_system
from latentwire.train.trainer import train
from latentwire.wire import PacketError
from helpers import tiny_config as _config

EXAMPLES, _ = load_examples("squad", split="train", n=6, seed=2, max_context_chars=300)


@pytest.mark.parametrize("kind", sorted(set(ENCODERS) - {"token_ids"}))   # token_ids: tests/test_token_reader.py
def test_encoder_shapes_and_private_slots(tmp_path, pair, kind):
    source = ["encoder.source_model=minilm"] if kind == "minilm" else []  # the offline all-MiniLM-L6-v2
    system = build_system(_config(tmp_path, kind, "encoder.private_slots=2", *source), pair)
    receivers = system.receivers
    assert not any(n.startswith("encoder._frozen") for n in system.state_dict())
    features = [system.featurize(e.question, e.context) for e in EXAMPLES[:3]]
    z = system.latent(features)
    assert z.shape == (3, 4 + 2 * 2, 8)
    assert system.slots_of("a") == [0, 1, 2, 3, 4, 5] and system.slots_of("b") == [0, 1, 2, 3, 6, 7]
    for name, receiver in receivers.items():
        embeds = system.receiver_embeds(name, z)
        assert embeds.shape == (3, 6, receiver.model.config.hidden_size)


def test_rms_calibration_matches_the_receiver_embeddings(pair):
    table = pair["a"].model.get_input_embeddings().weight
    target = table.pow(2).mean().sqrt().item()
    adapter = Adapter(8, table.shape[1], target)
    out = adapter(torch.randn(5, 4, 8) * 30)
    assert torch.allclose(out.pow(2).mean(dim=(1, 2)).sqrt(), torch.full((5,), target), rtol=1e-4)


def test_gradients_reach_only_trainable_parts(tmp_path, pair):
    config = _config(tmp_path)
    system = build_system(config, pair)
    receivers, builders = system.receivers, system.builders
    items, _ = build_items(EXAMPLES[:4], system.featurize, receivers, builders, config.loss, progress=False)
    loss, parts = batch_loss(system, items, config.loss)
    loss.backward()
    assert {"a/ce", "b/ce", "a/kd", "b/kd"} <= set(parts)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in system.named_parameters()
               if "queries" in n or n.startswith("adapters"))
    assert all(not p.requires_grad and p.grad is None for r in receivers.values() for p in r.model.parameters())


def test_k_token_targets_skip_special_tokens_and_score_the_first_answer_token(tmp_path, pair):
    config = _config(tmp_path)
    system = build_system(config, pair)
    receivers, builders = system.receivers, system.builders
    items, _ = build_items(EXAMPLES, system.featurize, receivers, builders, LossConfig(K=4, kd_weight=0),
                           progress=False)
    for item in items:
        for name, targets in item.targets.items():
            tokenizer = receivers[name].tokenizer
            assert 1 <= len(targets) <= 4 and not set(targets) & set(tokenizer.all_special_ids)
            assert tokenizer.decode(targets).strip() and item.example.answers[0].strip().startswith(
                tokenizer.decode(targets[:1]).strip())


def test_answer_end_closes_short_targets_with_the_end_token(tmp_path, pair):
    config = _config(tmp_path)
    system = build_system(config, pair)
    receivers, builders = system.receivers, system.builders
    plain, _ = build_items(EXAMPLES, system.featurize, receivers, builders, LossConfig(K=8, kd_weight=0),
                           progress=False)
    ended, _ = build_items(EXAMPLES, system.featurize, receivers, builders,
                           LossConfig(K=8, kd_weight=0, answer_end=True), progress=False)
    for before, after in zip(plain, ended):
        for name, targets in before.targets.items():
            end = builders[name].end_id
            assert after.targets[name] == (targets + [end])[:8]
    assert any(len(t) < 8 for i in plain for t in i.targets.values())   # some answer short enough to end


def test_training_items_cache_round_trip(tmp_path, pair):
    config = _config(tmp_path)
    system = build_system(config, pair)
    receivers, builders = system.receivers, system.builders
    items, report = build_items(EXAMPLES[:4], system.featurize, receivers, builders, config.loss, progress=False)
    save_items(items, tmp_path / "features", "k1", report.as_dict())
    loaded = load_items(EXAMPLES[:4], tmp_path / "features", "k1")
    assert [i.example.id for i in loaded] == [i.example.id for i in items]
    for a, b in zip(items, loaded):
        assert torch.equal(a.features, b.features) and a.targets == b.targets
        assert all(torch.equal(a.teacher[n][k], b.teacher[n][k]) for n in a.teacher for k in (0, 1))
    assert load_items(EXAMPLES[:4], tmp_path / "features", "another-config") is None
    (tmp_path / "features" / "items.safetensors").write_bytes(b"garbage")
    assert load_items(EXAMPLES[:4], tmp_path / "features", "k1") is None


def test_latent_logits_are_t0_aligned(pair):
    receiver = pair["a"]
    builder = PromptBuilder(receiver.tokenizer, PromptConfig())
    latent = torch.randn(2, 3, receiver.model.config.hidden_size) * 0.05
    targets = torch.tensor([[40, 41, 42], [43, 44, 45]])
    logits = answer_logits(receiver, builder, latent, targets)
    prompt = latent_prompt_embeds(receiver, builder, latent)
    full = receiver.model(inputs_embeds=torch.cat([prompt, receiver.embed(targets)], 1)).logits
    start = prompt.shape[1] - 1
    assert torch.allclose(logits, full[:, start:start + 3], atol=1e-5)


def test_kd_teacher_positions_are_right_under_padding(pair):
    receiver = pair["b"]
    builder = PromptBuilder(receiver.tokenizer, PromptConfig())
    contents = [format_content(e.question, e.context) for e in EXAMPLES[:3]]
    targets = [builder.answer_ids(c, e.answers[0])[:4] for c, e in zip(contents, EXAMPLES)]
    batched = teacher_top_k(receiver, builder, contents, targets, 4, 5)
    for content, target, (ids, logits) in zip(contents, targets, batched):
        alone_ids, alone_logits = teacher_top_k(receiver, builder, [content], [target], 4, 5)[0]
        n = len(target)
        assert torch.equal(ids[:n], alone_ids[:n]) and torch.allclose(logits[:n], alone_logits[:n], atol=1e-4)
        prompt = builder.prompt_ids(content)
        full = receiver.model(input_ids=torch.tensor([prompt + target])).logits[0, len(prompt) - 1]
        assert torch.allclose(full.topk(5).values, logits[0], atol=1e-4)


def test_losses_on_known_values():
    logits = torch.zeros(1, 2, 4)
    targets, mask = torch.tensor([[1, 2]]), torch.tensor([[1.0, 0.0]])
    assert k_token_ce(logits, targets, mask).item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    teacher_logits = torch.tensor([[[2.0, 1.0], [0.0, 0.0]]])
    ids = torch.tensor([[[0, 1], [0, 1]]])
    student = torch.full((1, 2, 4), -1e4)
    student[0, 0, :2] = torch.tensor([2.0, 1.0])
    assert kd_kl(student, ids, teacher_logits, mask, tau=1.0).item() == pytest.approx(0.0, abs=1e-5)
    assert kd_kl(torch.zeros(1, 2, 4), ids, teacher_logits, mask, tau=2.0).item() > 0


def test_train_resume_and_latent_eval(tmp_path, pair):
    config = _config(tmp_path, "byte", "train.steps=4")
    straight = train(config, progress=False, receivers=pair)
    assert straight.name == "step-000004"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3, 4] and all(r["loss"] > 0 for r in log[1:])
    for record in log:   # the shuffled-latent test, logged from step 0 for every receiver
        for name in ("a", "b"):
            assert record[f"{name}/bits_specific"] == pytest.approx(
                record[f"{name}/bits_shuffled"] - record[f"{name}/bits_own"])
            assert record[f"{name}/bits_own"] > 0 and record[f"{name}/bits_none"] > 0
    reference = load_trained(straight, dict(pair)).state_dict()

    resumed_cfg = _config(tmp_path, "byte", "train.steps=4", f"train.out_dir={tmp_path / 'run2'}")
    train(resumed_cfg, progress=False, receivers=pair, stop_after=2)      # "killed" after step 2
    resumed = load_trained(train(resumed_cfg, progress=False, receivers=pair), dict(pair)).state_dict()
    for key, value in reference.items():
        assert torch.allclose(value, resumed[key], atol=1e-6), key

    eval_cfg = _config(tmp_path, "byte", f"checkpoint={tmp_path / 'run'}", "eval.methods=[latent]",
                       "wire.eval_bits=[16,4]")
    rows = evaluate(eval_cfg, progress=False, receivers=dict(pair))
    assert [(r["receiver"], r["method"], r["bits"]) for r in rows] == [
        ("a", "latent", 16), ("a", "latent", 4), ("b", "latent", 16), ("b", "latent", 4),
        ("a+b", "latent_oracle", 16), ("a+b", "latent_oracle", 4), ("a+b", "latent_joint", 4)]
    assert min(rows[1]["f1"], rows[3]["f1"]) <= rows[6]["f1"] <= rows[5]["f1"] + 1e-9
    assert rows[1]["wire_bytes"] < rows[0]["wire_bytes"] and -1 <= rows[0]["latent_cosine"] <= 1
    assert rows[1]["wire_compression"] == pytest.approx(rows[1]["reference_bytes"] / rows[1]["wire_bytes"], rel=0.2)
    for row in rows[:4]:
        assert row["bits_specific"] == pytest.approx(row["bits_shuffled"] - row["bits_own"])
        assert row["bits_prior"] == pytest.approx(row["bits_none"] - row["bits_shuffled"])
    for oracle in rows[4:6]:
        same_bits = [r for r in rows[:4] if r["bits"] == oracle["bits"]]
        assert max(r["f1"] for r in same_bits) <= oracle["f1"] + 1e-9

    # the public receiver API answers a packet exactly as the harness did
    system = load_trained(tmp_path / "run", dict(pair))
    examples, _ = load_examples("squad", n=3, seed=0, split="validation")
    records = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    for example in examples:
        packet = system.encode(example.question, example.context, 4)
        for name in ("a", "b"):
            expected = next(r["prediction"] for r in records if r["receiver"] == name and r["method"] == "latent"
                            and r["bits"] == 4 and r["id"] == example.id)
            assert system.answer(packet, name, max_new_tokens=3) == expected
    with pytest.raises(ValueError, match="no receiver 'c'"):
        system.answer(packet, "c")


def test_packets_and_checkpoints_refuse_foreign_or_corrupt_input(tmp_path, pair):
    config = _config(tmp_path, "byte", "train.steps=2")
    checkpoint = train(config, progress=False, receivers=pair)
    system = load_trained(checkpoint, dict(pair))
    packet = system.encode("Who?", "Paris is big.")
    assert system.decode(packet).shape == (4, 8)
    for question, context in [("", "  "), ("Q?", "x" * 200_000), (None, "text")]:
        with pytest.raises(ValueError, match="non-empty|over the limit"):
            system.encode(question, context)
    other = build_system(_config(tmp_path, "byte", "train.seed=9"), pair)
    
    other.eval()
    with pytest.raises(PacketError, match="checkpoint"):
        other.decode(packet)
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_trained(checkpoint, dict(pair))


def test_shuffle_test_is_zero_for_a_constant_latent_and_not_otherwise(tmp_path, pair):
    from latentwire.train.objective import shuffle_test_bits
    config = _config(tmp_path, "byte")
    system = build_system(config, pair)
    receivers, builders = system.receivers, system.builders
    items, _ = build_items(load_examples("squad", n=4, seed=0, split="train")[0], system.featurize, receivers,
                           builders, config.loss, progress=False)
    varied = shuffle_test_bits(system, items)
    assert abs(varied["a/bits_specific"]) > 1e-4 and abs(varied["b/bits_specific"]) > 1e-4
    with torch.no_grad():
        system.encoder.resampler.out[1].weight.zero_()     # every example now gets the same latent
    constant = shuffle_test_bits(system, items)
    assert constant["a/bits_specific"] == pytest.approx(0, abs=1e-4)
    assert constant["b/bits_specific"] == pytest.approx(0, abs=1e-4)
    assert constant["a/bits_none"] != pytest.approx(constant["a/bits_shuffled"], abs=1e-4)


def test_split_content_joins_to_the_whole_content():
    from latentwire.prompt import split_content
    for carried in ("prompt", "context"):
        latent_part, text_part = split_content("Who?", "Ann is here.", carried)
        assert latent_part + text_part == format_content("Who?", "Ann is here.")
    assert split_content("Who?", "Ann is here.", "context") == ("Context: Ann is here.", "\nQuestion: Who?")


def test_text_after_the_latent_is_padded_correctly(pair):
    receiver = pair["a"]
    builder = PromptBuilder(receiver.tokenizer, PromptConfig(), "a")
    latent = torch.randn(3, 2, receiver.model.config.hidden_size) * 0.1
    after = [builder.encode("\nQuestion: Who is it?"), builder.encode("\nQuestion: Why?"), []]
    targets = torch.tensor([[5, 6, 7]] * 3)
    batched = answer_logits(receiver, builder, latent, targets, None, after)
    for row in range(3):
        alone = answer_logits(receiver, builder, latent[row:row + 1], targets[row:row + 1], None, [after[row]])
        torch.testing.assert_close(batched[row], alone[0], rtol=1e-4, atol=1e-4)
    plain = answer_logits(receiver, builder, latent[2:], targets[2:])
    torch.testing.assert_close(batched[2], plain[0], rtol=1e-4, atol=1e-4)


def test_context_only_packets_ignore_the_question_and_count_its_bytes(tmp_path, pair):
    config = _config(tmp_path, "byte", "encoder.input=context", "train.steps=2", f"checkpoint={tmp_path / 'run'}",
                     "eval.methods=[latent]", "wire.eval_bits=[4]")
    train(config, progress=False, receivers=pair)
    system = load_trained(tmp_path / "run", dict(pair))
    assert system.encode("Who?", "Ann is here.") == system.encode("Why not?", "Ann is here.")
    assert system.encode("Who?", "Ann is here.") != system.encode("Who?", "Bob is there.")
    with pytest.raises(ValueError, match="non-empty context"):
        system.encode("Who?", " ")
    rows = evaluate(config, progress=False, receivers=dict(pair))
    examples, _ = load_examples("squad", n=3, seed=0, split="validation")
    packet = len(system.encode(examples[0].question, examples[0].context))
    expected = sum(packet + len(e.question.encode()) for e in examples) / len(examples)
    latent_rows = [r for r in rows if r["method"] == "latent"]
    assert latent_rows and all(r["wire_bytes"] == pytest.approx(expected) for r in latent_rows)
    records = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    example = examples[0]
    packet = system.encode(example.question, example.context, 4)
    want = next(r["prediction"] for r in records if r["receiver"] == "a" and r["id"] == example.id
                and r["method"] == "latent")
    assert system.answer(packet, "a", question=example.question, max_new_tokens=3) == want
    with pytest.raises(ValueError, match="question="):
        system.answer(packet, "a")


@pytest.mark.parametrize("objective", ["reconstruction", "continuation"])
def test_span_tasks_train_and_evaluate(tmp_path, pair, objective):
    from latentwire.eval.spans import span_shuffle_test
    from latentwire.train.tasks import span_texts
    config = _config(tmp_path, "byte", f"loss.objective={objective}", "loss.span_tokens=6", "train.steps=2",
                     "loss.kd_weight=0")
    checkpoint = train(config, progress=False, receivers=pair)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert "a/bits_specific" in log[0] and log[-1]["step"] == 2
    system = load_trained(checkpoint, dict(pair))
    examples, _ = load_examples("squad", n=4, seed=0, split="validation")
    source, target = span_texts(examples[0].context, pair["a"].tokenizer, 6, objective)
    assert (source == target) == (objective == "reconstruction")
    assert len(pair["a"].tokenizer(source, add_special_tokens=False)["input_ids"]) <= 7
    result = span_shuffle_test(system, examples, batch_size=2)
    for name in ("a", "b"):
        row = result[name]
        assert row["n"] == 4 and row["bits_own"] > 0
        assert row["bits_specific"] == pytest.approx(row["bits_shuffled"] - row["bits_own"])
        assert row["wire_bytes"] == len(system.encode("q", "some context"))


def test_init_from_starts_a_run_from_another_runs_weights(tmp_path, pair):
    first = train(_config(tmp_path, "byte", "loss.objective=reconstruction", "loss.span_tokens=6",
                          "train.steps=2", "loss.kd_weight=0"), progress=False, receivers=pair)
    second = _config(tmp_path, "byte", f"train.init_from={first}", "train.steps=1", "train.lr=0",
                     "train.warmup=1", f"train.out_dir={tmp_path / 'qa'}")
    started = load_trained(train(second, progress=False, receivers=pair), dict(pair)).state_dict()
    for key, value in load_trained(first, dict(pair)).state_dict().items():
        torch.testing.assert_close(started[key], value, msg=key)


def test_embed_pca_starts_as_span_means_in_each_receivers_embedding_space(tmp_path, pair):
    from latentwire.encoders.source_encoders import span_means
    config = _config(tmp_path, "embed_pca", "encoder.d_z=32", "wire.bits=16")   # d_z = d_model: no loss
    system = build_system(config, pair)
    receivers = system.receivers
    features = [system.featurize_text("Ann is here and Bob is there, in the big house.")]
    embeds = system.embeds(features, bits=16)
    batch, mask = pad_features(features)
    expected = span_means(batch, mask, 4)                # the source's (a's) own span-mean embeddings
    got = embeds["a"] * (expected.pow(2).mean().sqrt() / embeds["a"].pow(2).mean().sqrt())
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=2e-3)
    assert embeds["b"].shape[-1] == receivers["b"].model.config.hidden_size


def test_shuffle_margin_term_reports_the_gap_and_adds_to_the_loss(tmp_path, pair):
    config = _config(tmp_path, "byte")
    system = build_system(config, pair)
    receivers, builders = system.receivers, system.builders
    items, _ = build_items(load_examples("squad", n=4, seed=0, split="train")[0], system.featurize, receivers,
                           builders, config.loss, progress=False)
    base, parts = batch_loss(system, items, config.loss)
    assert "a/shuffle_gap" not in parts
    config.loss.shuffle_weight, config.loss.shuffle_margin = 1.0, 1000.0    # the hinge is active
    total, parts = batch_loss(system, items, config.loss)
    for name in ("a", "b"):
        assert abs(parts[f"{name}/shuffle_gap"]) < 1000
    expected = base.item() + sum(1000 - parts[f"{n}/shuffle_gap"] for n in ("a", "b"))
    assert total.item() == pytest.approx(expected, rel=1e-4)
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in system.encoder.parameters())


def test_frozen_prefixes_do_not_move(tmp_path, pair):
    config = _config(tmp_path, "byte", "train.steps=2", "train.freeze=[encoder]", "loss.kd_weight=0")
    before = {k: v.clone() for k, v in build_system(config, pair).state_dict().items()}
    after = load_trained(train(config, progress=False, receivers=pair), dict(pair)).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("adapters."))
    with pytest.raises(Exception, match="nothing to train"):
        train(_config(tmp_path, "byte", "train.freeze=[encoder,adapters]", f"train.out_dir={tmp_path / 'x'}"),
              progress=False, receivers=pair)


def test_items_cache_key_follows_what_the_items_depend_on(tmp_path):
    from latentwire.train.features import items_key
    base = items_key(_config(tmp_path).to_dict())
    assert items_key(_config(tmp_path, "byte", "encoder.M=16", "train.steps=7", "data.n=9").to_dict()) == base
    for change in ("loss.objective=reconstruction", "encoder.input=context", "loss.K=2", "train.n_train=5"):
        assert items_key(_config(tmp_path, "byte", change).to_dict()) != base, change


def test_token_code_slots_name_the_most_surprising_shared_token_and_receivers_read_its_embedding(tmp_path, pair):
    config = _config(tmp_path, "token_code")           # int4 wire: grid codes pass it exactly
    system = build_system(config, pair)
    receivers = system.receivers
    encoder = system.encoder
    codes = system.adapters["a"].codes
    assert len(torch.unique(codes, dim=0)) == len(codes) and torch.equal(codes, system.adapters["b"].codes)
    torch.testing.assert_close(codes * 7, (codes * 7).round())   # on the int4 grid
    text = "Ann is here and Bob is there, in the big house near the old river."
    features = system.featurize_text(text)
    ids, surprise = features[:, 0].long(), features[:, 1]
    assert surprise[0] == 0 and (surprise[1:] > 0).all()
    chosen = encoder.chosen_tokens(features[None], torch.ones(1, len(ids)))[0]
    slot = (torch.arange(len(ids)) * 4) // len(ids)
    for m in range(4):                         # the chosen token is the slot's most surprising nameable one
        candidates = [(surprise[t].item(), ids[t].item()) for t in range(len(ids))
                      if slot[t] == m and encoder.nameable[ids[t]]]
        if candidates:
            assert chosen[m].item() == max(candidates)[1]
    z = system.latent([features], bits=4)
    torch.testing.assert_close(z[0], encoder.codes(chosen), rtol=1e-3, atol=1e-3)
    for name, receiver in receivers.items():
        adapter = system.adapters[name]
        weights = adapter.token_weights(z)[0]                                    # [M, n]
        vocab = receiver.tokenizer.get_vocab()
        names = {i: s for s, i in encoder.source_vocab.items()}
        for m in range(4):
            if encoder.nameable[chosen[m]]:       # decodes to the same string in this receiver's vocabulary
                top = adapter.embeddings[weights[m].argmax()]
                expected = receiver.model.get_input_embeddings().weight[vocab[names[chosen[m].item()]]]
                torch.testing.assert_close(top, expected.float())
                assert weights[m].max() > 0.9
    embeds = system.embeds([features], bits=4)
    assert all(e.shape[:2] == (1, 4) for e in embeds.values())
    embeds["a"].sum().backward()
    assert system.encoder.codes.weight.grad.abs().sum() > 0


def test_token_code_refuses_receivers_without_shared_tokens_and_too_few_codes(tmp_path, pair):
    from latentwire.encoders.token_codes import TokenCodeEncoder, grid_codes
    with pytest.raises(ValueError, match="raise encoder.d_z"):
        grid_codes(226, 2)
    assert len(torch.unique(grid_codes(3000, 8), dim=0)) == 3000
    config = _config(tmp_path, "token_code")
    system = build_system(config, pair)
    receivers = system.receivers
    other = TokenCodeEncoder(config.encoder, receivers["a"])
    other.source_vocab = {"Ġzzqx": 0}
    with pytest.raises(ValueError, match="share only 0 word-like tokens"):
        other.link(receivers)


def test_lora_receivers_leave_the_encoders_source_plain(tmp_path, pair):
    config = _config(tmp_path, "token_code", "features.lora.enabled=true", "features.lora.rank=2")
    system = build_system(config, pair)
    receivers = system.receivers
    assert system.encoder.source is not receivers["a"]
    assert not any("lora" in n for n, _ in system.encoder.source.model.named_parameters())
    assert any("lora" in n for n, _ in receivers["a"].model.named_parameters())


def test_token_code_prefix_slots_carry_k_tokens_each_merged_at_one_position(tmp_path, pair):
    from latentwire.adapters import rms_calibrate
    config = _config(tmp_path, "token_code", "encoder.select=prefix", "encoder.tokens_per_slot=2")
    system = build_system(config, pair)
    receivers = system.receivers
    encoder = system.encoder
    text = "Ann is here and Bob is there, in the big house near the old river."
    features = system.featurize_text(text)
    ids = features[:, 0].long()
    chosen = encoder.chosen_tokens(features[None], torch.ones(1, len(ids)))[0]
    assert chosen.tolist() == [i for i in ids.tolist() if encoder.nameable[i]][:8]   # M * k, in text order
    z = system.latent([features], bits=4)
    assert z.shape == (1, 4, 8)                                                   # 2 codes of 4 dims per slot
    torch.testing.assert_close(z[0].reshape(8, 4), encoder.codes(chosen), rtol=1e-3, atol=1e-3)
    names = {i: s for s, i in encoder.source_vocab.items()}
    for name, receiver in receivers.items():
        table, vocab = receiver.model.get_input_embeddings().weight.float(), receiver.tokenizer.get_vocab()
        rows = table[[vocab[names[i]] for i in chosen.tolist()]].reshape(1, 4, 2, -1)
        expected = rms_calibrate(rows.mean(2), system.adapters[name].target_rms)    # the pair's mean at first
        torch.testing.assert_close(system.adapters[name](z), expected, rtol=2e-3, atol=2e-3)
    short = system.featurize_text("Ann")                                           # fewer tokens than M * k
    assert encoder.chosen_tokens(short[None], torch.ones(1, len(short))).shape == (1, 8)


def test_token_code_prune_keeps_the_most_surprising_of_the_leading_tokens_in_order(tmp_path, pair):
    config = _config(tmp_path, "token_code", "encoder.select=prune", "encoder.keep_ratio=0.5")
    system = build_system(config, pair)
    encoder = system.encoder
    features = system.featurize_text("Ann is here and Bob is there, in the big house near the old river.")
    ids, surprise = features[:, 0].long().tolist(), features[:, 1].tolist()
    window = [p for p in range(len(ids)) if encoder.nameable[ids[p]]][:8]          # M=4 / keep_ratio 0.5
    kept = sorted([window[0]] + sorted(window[1:], key=lambda p: -surprise[p])[:3])  # the first always kept
    chosen = encoder.chosen_tokens(features[None], torch.ones(1, len(ids)))[0]
    assert chosen.tolist() == [ids[p] for p in kept]
    short = system.featurize_text("Ann")                                           # fewer tokens than M
    assert encoder.chosen_tokens(short[None], torch.ones(1, len(short))).shape == (1, 4)


def test_token_code_slot_options_are_checked_when_the_config_is_read(tmp_path):
    from latentwire.config import ConfigError
    for bad, match in [("encoder.tokens_per_slot=3", "divide encoder.d_z"), ("encoder.select=best", "select must"),
                       ("encoder.tokens_per_slot=0", "tokens_per_slot must be >= 1"),
                       ("encoder.keep_ratio=0", "keep_ratio must be in")]:
        with pytest.raises(ConfigError, match=match):
            _config(tmp_path, "token_code", bad)
    with pytest.raises(ConfigError, match="token_code only"):
        _config(tmp_path, "byte", "encoder.tokens_per_slot=2")


def test_shuffled_f1_equals_f1_for_a_constant_latent(tmp_path, pair, monkeypatch):
    from latentwire.eval import controls, harness
    from latentwire.eval.harness import run_method
    from latentwire.eval.methods import MethodContext
    # random receivers never hit a gold answer: score a prediction by its text, so that equal scores mean
    # equal answers (a shuffled pass that dropped the latent or kept the own one would show)
    for module in (harness, controls):   # the row's own answers and the shuffled pass's
        monkeypatch.setattr(module, "best_em_f1", lambda prediction, golds: (float(len(prediction) % 2),
                                                                            len(prediction) % 97 / 97))
    config = _config(tmp_path, "byte", "data.n=4")
    system = build_system(config, pair)
    receivers, builders = system.receivers, system.builders
    examples, _ = load_examples("squad", n=4, seed=0, split="validation")
    ctx = MethodContext(receivers["a"], builders["a"], 0, 16, system)
    varied = run_method(ctx, examples, "latent", 2, 3, progress=False, shuffled_f1=True).row
    assert 0 <= varied["f1_shuffled"] <= 1 and 0 <= varied["em_shuffled"] <= 1
    assert "f1_shuffled" not in run_method(ctx, examples, "latent", 2, 3, progress=False).row
    alone = run_method(ctx, examples, "latent", 2, 3, progress=False, shuffled_f1=True, shuffle=False).row
    assert alone["f1_shuffled"] == pytest.approx(varied["f1_shuffled"])   # the Pareto benchmark's setting:
    assert "bits_shuffled" not in alone and "bits_shuffled" in varied   # F1 control without the NLL test
    with torch.no_grad():
        system.encoder.resampler.out[1].weight.zero_()     # every example now gets the same latent
    constant = run_method(ctx, examples, "latent", 2, 3, progress=False, shuffled_f1=True).row
    assert constant["f1_shuffled"] == pytest.approx(constant["f1"])
    assert constant["em_shuffled"] == pytest.approx(constant["em"])


def test_prefix_selection_reads_no_surprise_so_featurize_skips_the_lm_pass(tmp_path, pair):
    system = build_system(_config(tmp_path, "token_code", "encoder.select=prefix"), pair)
    encoder, text = system.encoder, "Paris is the capital of France and a big city. Who wrote it? 1999"
    fast = encoder.featurize(text)
    encoder.select = "surprise"
    full = encoder.featurize(text)
    encoder.select = "prefix"
    assert torch.equal(fast[:, 0], full[:, 0]) and not fast[:, 1].any() and full[:, 1].any()
    mask = torch.ones(1, len(fast))
    assert torch.equal(encoder(fast[None], mask), encoder(full[None], mask))
