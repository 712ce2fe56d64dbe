"""Receiver features (LoRA, deep prefix, latent adapters, coprocessor) on tiny llama / qwen2 / gemma3."""
from contextlib import contextmanager

import pytest
import torch

from latentwire.config import ConfigError, PromptConfig, load_config
from latentwire.data.loaders import load_examples
from latentwire.eval.generation import greedy_decode
from latentwire.eval.harness import run_method
from latentwire.eval.methods import METHODS, MethodContext, PromptInput
from latentwire.features import FEATURES
from latentwire.features.base import kv_shape
from latentwire.latent_inputs import answer_logits, latent_prompt_embeds
from latentwire.prompt import PromptBuilder
from latentwire.train.features import build_items, teacher_top_k
from latentwire.train.load import load_trained
from latentwire.train.objective import batch_loss
from latentwire.system import build_system
from latentwire.train.trainer import train
from tiny import tiny_receiver

ARCHS = ["llama", "qwen2", "gemma3"]
EXAMPLES, _ = load_examples("squad", n=4, seed=0, split="train", max_context_chars=200)


def _receivers(arch):
    receiver = tiny_receiver(arch, seed=3)
    receiver.name = "a"
    return {"a": receiver}


def _config(tmp_path, feature, *extra):
    return load_config(None, ["receivers=[{name: a, model: x}]", "encoder.kind=byte", "encoder.M=3",
                              "encoder.d_z=8", "encoder.width=32", "encoder.layers=1", "loss.kd_top_k=5",
                              "train.batch_size=2", "train.n_train=4", "train.warmup=1", "train.save_every=2",
                              f"train.out_dir={tmp_path / 'run'}", "data.n=2", f"eval.out_dir={tmp_path / 'eval'}",
                              "eval.max_new_tokens=3", "features.latent_adapters.every=1",
                              "features.coprocessor.width=16", "features.deep_prefix.rank=8",
                              "features.coprocessor.rank=8", "features.lora.rank=2",
                              *([f"features.{feature}.enabled=true"] if feature else []), *extra])


def _system(tmp_path, arch, feature):
    receivers = _receivers(arch)
    system = build_system(_config(tmp_path, feature), receivers)
    receivers, builders = system.receivers, system.builders
    return system, receivers["a"], builders["a"]


def _randomize(module):
    """Move zero-initialised parameters (LoRA B, gates, KV projections) off zero so that they act."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.5)


def _items(system, receiver, builder, config_loss):
    items, _ = build_items(EXAMPLES, system.featurize, {"a": receiver}, {"a": builder}, config_loss, progress=False)
    return items


def _logits(system, receiver, builder, items):
    embeds = system.embeds([i.features for i in items])["a"]
    targets = torch.tensor([i.targets["a"][:2] for i in items])
    return answer_logits(receiver, builder, embeds, targets, system.features), embeds


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_feature_shapes_gradients_and_t0_consistency(tmp_path, arch, feature):
    system, receiver, builder = _system(tmp_path, arch, feature)
    items = _items(system, receiver, builder, system.config.loss)
    _randomize(system.features)
    logits, embeds = _logits(system, receiver, builder, items)
    assert logits.shape[:2] == (len(items), 2)
    kv = system.features.kv_entries("a", embeds)
    if feature in ("deep_prefix", "coprocessor"):
        layers, heads, head_dim = kv_shape(receiver.model)
        entries = 3 if feature == "deep_prefix" else system.config.features.coprocessor.entries
        assert len(kv) == layers and kv[0][0].shape == (len(items), heads, entries, head_dim)
    else:
        assert kv is None
    # the feature acts: without it the logits differ
    with system.features.plain("a"):
        bare = answer_logits(receiver, builder, embeds, torch.tensor([i.targets["a"][:2] for i in items]))
    assert not torch.allclose(bare, logits, atol=1e-5)
    # generation sees exactly what training sees at t=0 (same prefix, positions and hooks)
    prompts = [PromptInput("", embeds=latent_prompt_embeds(receiver, builder, embeds[j:j + 1])[0],
                           latent_embeds=embeds[j]) for j in range(len(items))]
    decoded = greedy_decode(receiver, prompts, 1, builder.stop_ids, builder.stop_ids[0], system.features)
    torch.testing.assert_close(decoded.first_logits, logits[:, 0].float(), rtol=1e-4, atol=1e-4)
    # gradients reach the feature and the latent path, nothing of the frozen receiver
    system.zero_grad()
    loss, _ = batch_loss(system, items[:2], system.config.loss)
    loss.backward()
    assert all(p.grad is not None for p in system.features.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in system.encoder.parameters())
    trainable = {id(p) for p in system.parameters()}
    for name, p in receiver.model.named_parameters():
        assert id(p) in trainable or (p.grad is None and not p.requires_grad), name


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("feature", ["lora", "latent_adapters"])
def test_zero_initialised_feature_reproduces_the_receiver(tmp_path, arch, feature):
    system, receiver, builder = _system(tmp_path, arch, feature)
    items = _items(system, receiver, builder, system.config.loss)
    with_feature, embeds = _logits(system, receiver, builder, items)
    with system.features.plain("a"):
        without = answer_logits(receiver, builder, embeds, torch.tensor([i.targets["a"][:2] for i in items]))
    torch.testing.assert_close(with_feature, without, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("feature", ["deep_prefix", "coprocessor"])
def test_kv_features_keep_the_latent_prefix(tmp_path, feature):
    """Cache entries are added beside the latent, never instead of it (the predecessor's bug 7)."""
    system, receiver, builder = _system(tmp_path, "llama", feature)
    with pytest.raises(ValueError, match="only features that act through the weights alone"):
        with system.features.folded("a"):      # they read the latent: there is nothing to fold them into
            pass
    _randomize(system.features)
    embeds = torch.randn(2, 3, receiver.model.config.hidden_size) * 0.1
    targets = torch.tensor([[5, 6], [7, 8]])
    fixed = _FixedEntries(system.features.kv_entries("a", embeds))   # the same entries whatever latent is read
    changed = answer_logits(receiver, builder, embeds * 2, targets, fixed)
    assert not torch.allclose(changed, answer_logits(receiver, builder, embeds, targets, fixed), atol=1e-5)


class _FixedEntries:
    """Receiver features that add the same cache entries `kv` whatever latent the receiver reads."""

    def __init__(self, kv):
        self.kv = kv

    def kv_entries(self, receiver, latent):
        return self.kv

    @contextmanager
    def reading(self, receiver, latent):
        yield


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_feature_checkpoint_round_trip_and_eval(tmp_path, feature):
    config = _config(tmp_path, feature, "train.steps=2", "eval.methods=[text,latent]", "wire.eval_bits=[16]",
                     f"checkpoint={tmp_path / 'run'}")
    checkpoint = train(config, progress=False, receivers=_receivers("qwen2"))
    trained = load_trained(checkpoint, _receivers("qwen2")).state_dict()
    fresh = _receivers("qwen2")
    loaded = load_trained(checkpoint, fresh)
    assert any(key.startswith("features.") for key in trained)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, trained[key], msg=key)
    # the LoRA weights landed inside the fresh receiver itself
    if feature == "lora":
        inside = {n: p for n, p in fresh["a"].model.named_parameters() if "lora_B" in n}
        assert inside and any(p.abs().sum() > 0 for p in inside.values())
    example = EXAMPLES[0]
    assert isinstance(loaded.answer(loaded.encode(example.question, example.context, 16), "a", max_new_tokens=3), str)


def test_text_teacher_and_text_baseline_are_unchanged_by_lora(tmp_path):
    system, receiver, builder = _system(tmp_path, "llama", "lora")
    _randomize(system.features)
    reference = tiny_receiver("llama", seed=3)
    contents = [f"Context: {e.context}\nQuestion: {e.question}" for e in EXAMPLES]
    targets = [builder.answer_ids(c, e.answers[0]) for c, e in zip(contents, EXAMPLES)]
    ref_builder = PromptBuilder(reference.tokenizer, PromptConfig(), "a")
    with system.features.plain("a"):
        got = teacher_top_k(receiver, builder, contents, targets, 2, 5)
    want = teacher_top_k(reference, ref_builder, contents, targets, 2, 5)
    for (ids, logits), (ref_ids, ref_logits) in zip(got, want):
        assert torch.equal(ids, ref_ids)
        torch.testing.assert_close(logits, ref_logits)
    with system.features.reading("a", torch.zeros(len(contents), 0, receiver.model.config.hidden_size)):
        lora_on = teacher_top_k(receiver, builder, contents, targets, 2, 5)   # LoRA acts while the model reads
    assert not torch.allclose(lora_on[0][1], want[0][1])
    ctx = MethodContext(receiver, builder, system=system)
    text = run_method(ctx, EXAMPLES, "text", 2, 3, progress=False)
    plain = run_method(MethodContext(reference, ref_builder), EXAMPLES, "text", 2, 3, progress=False)
    assert [p["generated_ids"] for p in text.predictions] == [p["generated_ids"] for p in plain.predictions]
    assert METHODS["text"].trained is False and METHODS["latent"].trained


@pytest.mark.parametrize("overrides, message", [
    (["features.lora.enabled=true", "features.lora.rank=0"], "lora.rank"),
    (["features.coprocessor.enabled=true", "features.coprocessor.entries=0"], "coprocessor.entries"),
    (["features.latent_adapters.enabled=true", "features.latent_adapters.layers=[-1]"], "layers"),
    (["features.deep_prefix.enabled=true", "features.deep_prefix.rank=0"], "deep_prefix.rank"),
    (["loss.objective=summarize"], "loss.objective"),
    (["loss.objective=reconstruction", "loss.span_tokens=1"], "span_tokens"),
    (["encoder.input=question"], "encoder.input"),
])
def test_impossible_combinations_are_refused_when_the_config_is_read(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_adapter_layers_out_of_range_are_refused(tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        build_system(_config(tmp_path, "latent_adapters", "features.latent_adapters.layers=[5]"), _receivers("llama"))


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_a_second_model_on_the_same_receivers_leaves_the_first_ones_features(tmp_path, feature):
    receivers = _receivers("qwen2")
    first = build_system(_config(tmp_path, feature), receivers)
    _randomize(first.features)
    items = _items(first, receivers["a"], first.builders["a"], first.config.loss)
    before_state = {k: v.clone() for k, v in first.state_dict().items()}
    before, _ = _logits(first, receivers["a"], first.builders["a"], items)
    second = build_system(_config(tmp_path, feature, "train.seed=5"), receivers)   # same receivers, its own features
    _randomize(second.features)
    after, _ = _logits(first, receivers["a"], first.builders["a"], items)
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in before_state.items())
    torch.testing.assert_close(after, before)
    theirs, _ = _logits(second, receivers["a"], second.builders["a"], items)
    assert not torch.allclose(theirs, before, atol=1e-5)
    with first.features.plain("a"), second.features.plain("a"):   # and the receiver itself is untouched
        bare = teacher_top_k(receivers["a"], first.builders["a"], ["Context: x\nQuestion: y"], [[5]], 1, 3)
    reference = tiny_receiver("qwen2", seed=3)
    ref_builder = PromptBuilder(reference.tokenizer, first.builders["a"].config, "a")
    torch.testing.assert_close(bare[0][1], teacher_top_k(reference, ref_builder, ["Context: x\nQuestion: y"],
                                                         [[5]], 1, 3)[0][1])


@pytest.mark.parametrize("feature", [None, *sorted(FEATURES)])
def test_each_receivers_parameters_are_its_reader_and_features_and_no_one_elses(tmp_path, feature):
    """LatentWire.receiver_parameters (what train.readers freezes for a receiver left out): every adapter and
    feature tensor belongs to exactly one receiver, under that receiver's name; the encoder's to none."""
    receivers = {"a": tiny_receiver("llama", seed=3), "b": tiny_receiver("qwen2", seed=4)}
    receivers["b"].name = "b"
    receivers["a"].name = "a"
    config = _config(tmp_path, feature, "receivers=[{name: a, model: x}, {name: b, model: y}]")
    system = build_system(config, receivers)
    names = {id(p): name for name, p in system.named_parameters()}
    owned = {r: {id(p) for p in system.receiver_parameters(r)} for r in "ab"}
    assert owned["a"] and owned["b"] and not owned["a"] & owned["b"]
    assert not (owned["a"] | owned["b"]) & {id(p) for p in system.encoder.parameters()}
    for r in "ab":
        assert all(f".{r}." in names[i] for i in owned[r]), r
    unowned = {names[i] for i in names.keys() - owned["a"] - owned["b"]}
    assert all(not (name.startswith("adapters.") or name.startswith("features.")) for name in unowned), unowned
