"""One configuration object for the CLI, the trainer and the evaluator.

Defaults live in the dataclasses below; a YAML file overrides only what differs, and
`section.field=value` strings on the command line override both. Unknown keys are errors.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from latentwire.adapters.position_budget import DEFAULT_RULES, LEAVE_OUTS
from latentwire.errors import ConfigError
from latentwire.train.tasks import TASKS, aux_task_problems
from latentwire.wire.codings import CODING_NAMES
from latentwire.wire.quantize import BIT_WIDTHS, MAX_GROUP_SIZE

REGIMES = ("question_aware", "context_only")
"""question_aware: the sender sees the question and may use it; context_only: the sender never sees it (the
receiver, which always knows the question, may use it), and the question crosses as its own UTF-8 bytes."""


@dataclass
class ReceiverConfig:
    """One frozen LLM that reads the prompt (or, later, the latent)."""

    name: str = "smollm2"
    """Short name used in tables and file names."""
    model: str = "smollm2-135m"
    """Offline registry name (smollm2-135m, qwen2.5-coder-0.5b), Hugging Face id or local directory."""
    dtype: str = "auto"
    """Weights dtype of this frozen receiver: auto (the run's `dtype`), float32, bfloat16 or float16."""


@dataclass
class DataConfig:
    """Where QA examples come from."""

    source: str = "squad"
    """squad (official JSON layout), squad_hub (datasets hub), hotpotqa (distractor JSON) or jsonl."""
    path: str = ""
    """File for squad / hotpotqa / jsonl; empty means the SQuAD slice shipped in the package."""
    split: str = "validation"
    """train or validation: split by whole articles (validation = the last 40 articles)."""
    n: int = 100
    """Number of examples to use (0 = all)."""
    seed: int = 0
    """Seed of the sample drawn when n is smaller than the split."""
    max_context_chars: int = 4000
    """Longer contexts are cut at a word boundary (HotpotQA paragraphs are joined first)."""


@dataclass
class PromptConfig:
    """How a receiver is prompted: the same for every method and for training."""

    instruction: str = "Answer the question with a short phrase copied from the context."
    """Instruction placed before the context inside the user turn."""
    anchor: str = "Answer:"
    """Text right before the answer (inside the assistant turn when a chat template exists)."""
    use_chat_template: bool = True
    """Use the receiver's chat template where it has one; plain text otherwise."""
    bos: str = "model"
    """BOS policy: model (the tokenizer's own add_bos_token), always or never."""


@dataclass
class EvalConfig:
    """Baseline and latent evaluation."""

    methods: list[str] = field(default_factory=lambda: ["text", "token_budget", "embed_raw", "embed_anchor"])
    """Methods to run, from latentwire.eval.methods.METHODS."""
    budgets: list[int] = field(default_factory=lambda: [16, 32, 64])
    """M values: token budget for question + context (token_budget)."""
    batch_size: int = 8
    """Examples per forward pass."""
    max_new_tokens: int = 16
    """Fixed greedy generation length (never derived from the gold answer)."""
    out_dir: str = "runs/eval"
    """Where metrics.json, predictions.jsonl and results.md are written."""
    threads: int = 0
    """torch CPU threads (0 = torch default)."""
    shuffled_f1: bool = False
    """Also answer every question from another example's latent (example i-1's, the shuffled-latent test's
    pairing) and report that F1/EM (f1_shuffled, em_shuffled) in each latent row: the F1 that a trained
    reader reaches without its own packet (one more generation pass per latent row)."""
    joint: bool = True
    """Also rescore the receivers jointly on the latent at wire.bits (a second pass over every question)."""
    shuffle_test: bool = True
    """Run the shuffled-latent test in every latent row (bits_specific / bits_prior: two more NLL passes)."""
    sentences: list[int] = field(default_factory=lambda: [1, 2])
    """Sentences kept by select_lexical / select_minilm (one row per value)."""
    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    """Tokens a receiver position reads in the latent_k and latent_focus rows of a token reader (one row per
    value, each one the reader was trained for)."""
    salient_run_k: int = 4
    """latent_salient: tokens a position in the runs between the salient tokens (each latent_salient row's k,
    its positions' budget, must not exceed it; the reader must have been trained for it)."""
    merge_layer: int = 8
    """latent_deep: the decoder layer (1 .. the receiver's layers - 1) from which a k-merged position reads the
    states of its k tokens as the context's first layers made them (pooled), instead of its merged embedding's."""
    max_position_share: float = 0.0
    """A position budget for the merged token readings (latent_k, latent_deep, latent_selected at k >= 2): at
    most this share of the positions the packet's text would take in the receiver's text prompt (floor, at
    least one; PromptBuilder.text_positions: what `text`'s and the selection peers' context positions count). A
    packet whose ceil(T / k) positions exceed it is read without what eval.leave_out's rules leave out and, if
    still over (rules without `predictable`), in balanced groups of k or more tokens (at most 4, each by the
    reader's merge for its size).
    0: no budget (ceil(T / k) positions)."""
    leave_out: list[str] = field(default_factory=lambda: list(DEFAULT_RULES))
    """Within eval.max_position_share, what the receiver leaves out of the packet's tokens before it merges groups
    of k + 1, in this order and only while the reading is over the budget (latentwire.adapters.position_budget:
    label: the context label every context packet begins with; end_mark: the closing sentence mark;
    predictable: the tokens most probable under the shared unigram table, until the reading fits). []: merge
    only."""
    rates: list[float] = field(default_factory=lambda: [0.5, 0.33])
    """Rates asked of llmlingua (share of the context's tokens kept; one row per value; rows report the rate
    it delivered)."""
    regime: str = "question_aware"
    """question_aware (the sender sees the question) or context_only (it never does; the receiver, which
    knows the question, may select, and the question crosses as its own UTF-8 bytes)."""
    codings: list[str] = field(default_factory=lambda: ["utf8", "zstd", "ids", "unigram"])
    """Wire codings of every text method's message, one bytes_<coding> column each (latentwire.wire.codings;
    lm is lm_coded's own; bigram, the order-1 coding, on request: bench/pareto.py asks for it)."""
    unigram: str = ""
    """The unigram table of the unigram coding (empty: the one shipped for the default receivers)."""
    bigram: str = ""
    """The order-1 table of the bigram coding (empty: the one shipped for the default receivers)."""
    timing_n: int = 0
    """Time the receiver (receiver_ms: to the first answer token, batch 1) on the first timing_n examples of
    each row (0 = not timed)."""
    prefix_cache: bool = False
    """Time with the receiver's prompt prefix (chat header and instruction, the same ids for every example and
    method) in a KV cache computed once, as a server keeps a fixed system prompt's cache: receiver_ms then
    counts the rest of the prompt. Rows whose receiver features read the latent are timed whole."""
    fold_weights: bool = False
    """Time trained rows with receiver features that act only through the weights (LoRA) folded into the
    receiver's weights once, as a server hosting one reader keeps them: the reading then costs the frozen
    model's forward (rows say so: weights_folded). Answers are generated unfolded either way."""


@dataclass
class EncoderConfig:
    """The sender's encoder: text -> latent Z [M, d_z]."""

    kind: str = "byte"
    """byte, mean_pool, embed_pca, token_code, token_ids, lm_perceiver or minilm (latentwire.encoders.ENCODERS)."""
    M: int = 32
    """Number of latent slots."""
    d_z: int = 16
    """Width of each slot on the wire."""
    width: int = 128
    """Internal width of the trainable encoder."""
    layers: int = 2
    """Transformer / Perceiver layers of the trainable encoder."""
    heads: int = 4
    """Attention heads of the trainable encoder."""
    max_input: int = 1024
    """Longest input the encoder reads (bytes for byte, tokens otherwise); longer input is cut."""
    source_model: str = "smollm2-135m"
    """Frozen model whose token embeddings (mean_pool), hidden states (lm_perceiver) or features (minilm:
    a BERT-like dir/id; the default means the offline all-MiniLM-L6-v2) feed the encoder."""
    source_layer: int = 20
    """Hidden-state layer of source_model read by lm_perceiver."""
    private_slots: int = 0
    """Slots per receiver that only that receiver reads (0 = all M slots shared)."""
    tokens_per_slot: int = 1
    """token_code: tokens each slot names (d_z / tokens_per_slot dims each); a receiver reads their
    merged embeddings at one position."""
    select: str = "surprise"
    """token_code: which tokens the slots name. surprise: in each of M * tokens_per_slot windows, the
    word-like shared token the source LM found most surprising; prefix: the first M * tokens_per_slot
    tokens of the text that every vocabulary has, in order; prune: of the first M * tokens_per_slot /
    keep_ratio such tokens, the M * tokens_per_slot the source LM found most surprising, in order (the
    predictable ones dropped, as LLMLingua does)."""
    keep_ratio: float = 0.5
    """token_code, select=prune: the share of the text's leading tokens kept."""
    input: str = "prompt"
    """What the packet carries: prompt (question + context) or context (made without the question,
    which then travels as text beside the packet, its bytes counted)."""
    ks: list[int] = field(default_factory=lambda: [2])
    """token_ids: tokens a receiver position reads (1..4); training draws one per batch, evaluation reads at
    the first (the packet is the same for every k)."""
    merge: str = "weighted"
    """token_ids: how a receiver merges a position's k token embeddings: weighted (a learned weight per place
    and dimension), mlp (the mean plus a small MLP) or mlp_relative (its output scaled by the mean's RMS); all
    start as the mean."""
    unigram: str = ""
    """token_ids: the unigram table the packet is range-coded under (empty: the shipped table of the default
    receivers; `latentwire fit-unigram` makes one for others)."""
    coder: str = "unigram"
    """token_ids: how the packet codes its ids: unigram (i.i.d. under encoder.unigram's table) or bigram (each
    given the one before, the order-1 table encoder.bigram on top of it)."""
    bigram: str = ""
    """token_ids, coder=bigram: the order-1 table (empty: the one shipped for the default receivers)."""
    focus: int = 0
    """token_ids: sentences a two-resolution reader reads at k = 1 (each of their tokens a position of its own,
    the rest of the context k to a position): those focus_scorer ranks highest for the question, marked by
    the receiver (latentwire.adapters.focus); 0: every step reads uniformly."""
    focus_scorer: str = "lexical"
    """token_ids: the sentence scorer of the focus (latentwire.sentences.SCORERS)."""
    focus_share: float = 0.5
    """token_ids with focus > 0: the share of training steps read at two resolutions (drawn per step, as k)."""
    merge_layer: int = 0
    """token_ids: 0 merges a position's k tokens at the embeddings alone; L >= 1 (below the receivers' layer
    count) also gives decoder layers L and up the states of the context read a token a position through layers
    below L, pooled k to a position (latentwire.adapters.layer_merge); uniform readings only (focus_share 0)."""
    layer_pool: str = "mean"
    """token_ids with merge_layer >= 1: how a group's k states at layer merge_layer become one: mean, or a
    learned merge of them (weighted, mlp or mlp_relative, as encoder.merge; it starts as the mean)."""
    pool_hidden: int = 128
    """token_ids with layer_pool mlp or mlp_relative: the hidden width of the learned pool's MLP."""


@dataclass
class WireConfig:
    """Quantisation of the latent into the packet."""

    bits: int = 4
    """Bit width the model is trained for (16 = fp16, 8, 6, 4)."""
    group_size: int = 32
    """Values sharing one fp16 scale."""
    eval_bits: list[int] = field(default_factory=lambda: [16, 8, 6, 4])
    """Bit widths the latent evaluation sends at."""


@dataclass
class LossConfig:
    """Training losses, all from one forward pass per receiver."""

    K: int = 4
    """Teacher-forced answer tokens scored."""
    answer_end: bool = False
    """Append the receiver's end-of-answer token (PromptBuilder.end_id) to each QA target, within the K
    scored tokens, so that the receiver also learns where a short answer stops."""
    first_token_weight: float = 1.0
    """Extra weight of the first answer token's CE."""
    ce_weight: float = 1.0
    """Weight of the K-token CE."""
    kd_weight: float = 0.5
    """Weight of KL(teacher || student) from the same receiver prompted with the full text (0 = off)."""
    kd_tau: float = 2.0
    """KD temperature (the loss is scaled by tau^2)."""
    kd_top_k: int = 32
    """Teacher distributions are cached as their top-k (renormalised)."""
    self_kd_weight: float = 0.0
    """Token readers: weight of KL(teacher || student) on the answer positions of a QA step read at k > 1, the
    teacher being the same reader reading the same packet at k = 1 (one more forward, without gradient;
    kd_tau and kd_top_k apply). 0 = off."""
    self_states_weight: float = 0.0
    """Token readers: weight of the mean squared difference of hidden states (every layer, in units of the
    teacher's per-dimension spread: latentwire.losses.state_alignment) at the positions read after the context
    (question, anchor, answer inputs) on a QA step read at k > 1, against the same reader reading the same
    packet at k = 1 (one more forward, without gradient; shared with self_kd): a dense target for what the
    merged positions must give the question. 0 = off."""
    shuffle_weight: float = 0.0
    """Weight of a hinge on the shuffled-latent gap: relu(shuffle_margin - (bits given another example's
    latent - bits given its own)), per example; one extra receiver forward per step (0 = off)."""
    shuffle_margin: float = 8.0
    """The gap in bits below which the hinge acts."""
    objective: str = "qa"
    """A task of latentwire.train.tasks.TASKS: qa (answer tokens), reconstruction (the receiver regenerates a
    span of the context from the latent) or continuation (the latent of one span, the next span as target)."""
    span_tokens: int = 64
    """Span length for reconstruction / continuation, in tokens of the first receiver."""
    ks: list[int] = field(default_factory=list)
    """Token readers: the k values `objective`'s steps read at, drawn per step (a subset of encoder.ks, e.g. [2]
    for a reader specialised at one k while every merge of encoder.ks is kept); empty = encoder.ks."""
    aux_objective: str = ""
    """A second task of TASKS trained on a share of the steps beside `objective` (e.g. reconstruction kept
    during QA, so that what it taught the reader is not unlearned, or qa_selected, the question-aware reading
    of latent_selected); "" = none."""
    aux_share: float = 0.0
    """The share of optimizer steps on aux_objective, drawn per step from train.seed; in (0, 1) with it."""
    aux_ks: list[int] = field(default_factory=list)
    """Token readers: the k values aux_objective's steps read at, drawn per step as encoder.ks are (a subset of
    encoder.ks, e.g. [2, 3, 4]: reconstruction where merged reading is taught); empty = encoder.ks."""


@dataclass
class TrainConfig:
    """The trainer."""

    steps: int = 200
    """Optimizer steps."""
    batch_size: int = 8
    """Examples per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 1e-3
    """Peak learning rate (cosine schedule after warm-up)."""
    warmup: int = 20
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    clip: float = 1.0
    """Gradient norm clip."""
    seed: int = 0
    """Seed of initialisation and of the example order."""
    n_train: int = 2000
    """Training examples drawn from data (train split)."""
    mixed_precision: str = "auto"
    """Autocast of the training compute (accelerate): auto (bf16 when the run's `dtype` resolves to
    bfloat16, fp16 for float16, else no), no, bf16 or fp16. Trainable weights stay float32."""
    log_every: int = 10
    """Steps between log lines."""
    save_every: int = 50
    """Steps between checkpoints."""
    out_dir: str = "runs/train"
    """Checkpoints, log.jsonl and the resolved config."""
    max_bad_steps: int = 10
    """Stop after this many steps with a non-finite loss or gradient."""
    freeze: list[str] = field(default_factory=list)
    """Parameter name prefixes kept frozen, e.g. [encoder, adapters] to train only receiver features."""
    init_from: str = ""
    """A checkpoint (or run dir) whose weights start this run, e.g. a reconstruction pretraining stage."""
    continue_from: str = ""
    """A state written by `latentwire export-state` (weights and step): a run with no checkpoint in out_dir
    continues from its step with its weights (the optimizer's moments start again), e.g. on a fresh machine."""
    init_new_lora: bool = False
    """train.init_from may lack LoRA modules that this config adds (features.lora.targets grown beyond the
    loaded reader's): they start at zero, so the stage starts from the loaded reader's reading."""
    readers: list[str] = field(default_factory=list)
    """Names of the receivers whose readers this run trains (empty: every receiver's). The others are loaded
    (their tokenizers shape the shared vocabulary of token packets) and keep their loaded readers, unread and
    unchanged, e.g. [smollm2] to train one receiver's reader further at a fraction of the step time."""
    init_fresh: list[str] = field(default_factory=list)
    """Name prefixes of tensors that start from this config's initialisation, not from train.init_from (the
    file's tensors under them are not read), e.g. [adapters.] to try another encoder.merge on a trained
    reader's LoRA. Each prefix must name at least one tensor of the model."""


@dataclass
class LoraFeatureConfig:
    """LoRA on every receiver (peft), trained with the latent; off while the text teacher runs."""

    enabled: bool = False
    rank: int = 8
    """LoRA rank r."""
    alpha: float = 16.0
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Receiver module names that get LoRA (names shared by llama, qwen2 and gemma3)."""


@dataclass
class DeepPrefixConfig:
    """Per-layer keys and values made from the latent slots, given to the receiver as its KV cache."""

    enabled: bool = False
    rank: int = 64
    """Width of the shared bottleneck before each layer's key/value projection."""


@dataclass
class LatentAdapterConfig:
    """Gated cross-attention from the receiver's hidden states to the latent at chosen layers."""

    enabled: bool = False
    every: int = 4
    """A block after every n-th decoder layer (after layers n-1, 2n-1, ...), unless `layers` is set."""
    layers: list[int] = field(default_factory=list)
    """Explicit decoder layer indices (0-based); empty = use `every`."""
    heads: int = 4


@dataclass
class CoprocessorConfig:
    """A small network turning the latent into a few extra key/value entries per layer (KV cache)."""

    enabled: bool = False
    entries: int = 4
    """Extra cache entries per layer (added beside the latent prefix, never replacing it)."""
    width: int = 128
    layers: int = 1
    rank: int = 64


@dataclass
class FeaturesConfig:
    """Optional receiver-side features (Phase B); each is off by default and has its own section."""

    lora: LoraFeatureConfig = field(default_factory=LoraFeatureConfig)
    deep_prefix: DeepPrefixConfig = field(default_factory=DeepPrefixConfig)
    latent_adapters: LatentAdapterConfig = field(default_factory=LatentAdapterConfig)
    coprocessor: CoprocessorConfig = field(default_factory=CoprocessorConfig)

    def enabled(self) -> list[str]:
        """Names of the enabled features, in registry order."""
        return [name for name in ("lora", "deep_prefix", "latent_adapters", "coprocessor")
                if getattr(self, name).enabled]


@dataclass
class ServeConfig:
    """`latentwire serve`: the HTTP server in front of one loaded model (latentwire/service/)."""

    host: str = "127.0.0.1"
    """Address to listen on: loopback unless you expose it (0.0.0.0)."""
    port: int = 8000
    """TCP port."""
    max_body_bytes: int = 65536
    """Largest request body accepted (413 above it)."""
    queue_limit: int = 32
    """Model jobs that may wait at once (503 with Retry-After beyond it)."""
    timeout_s: float = 30.0
    """Longest a request waits for its answer (504 after it)."""
    max_batch: int = 8
    """Answer requests for one receiver decoded together (micro-batching); 1 turns it off."""
    batch_wait_ms: float = 2.0
    """How long the worker waits for more answer requests to fill a batch."""
    token_file: str = ""
    """File holding the bearer token every /v1 route requires (empty: no token)."""
    key_file: str = ""
    """File holding the shared key of packet authentication (HMAC-SHA256 tag appended by /v1/encode and
    required by /v1/answer); empty: packets are not authenticated."""


DEFAULT_RECEIVER_NAMES = {"smollm2-135m": "smollm2", "qwen2.5-coder-0.5b": "qwen"}
"""The default receivers, model -> name (the name their trained readers are saved under); a receiver given
on the command line by one of these models takes its name."""


@dataclass
class Config:
    """Everything a run needs."""

    receivers: list[ReceiverConfig] = field(default_factory=lambda: [
        ReceiverConfig(name=name, model=model) for model, name in DEFAULT_RECEIVER_NAMES.items()])
    data: DataConfig = field(default_factory=DataConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    wire: WireConfig = field(default_factory=WireConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    checkpoint: str = ""
    """A trained LatentWire checkpoint directory: enables the latent eval methods."""
    dtype: str = "auto"
    """Precision of the run (latentwire/precision.py): auto (bfloat16 where this processor multiplies bfloat16
    matrices fast: AMX or AVX512-BF16, or a GPU that supports it; float32 elsewhere), float32, bfloat16 or
    float16. The frozen receivers take it as their weights' dtype, training as its autocast; trainable weights
    and checkpoints stay float32."""
    resolved_dtype: str = ""
    """Written by a run: what `dtype` resolved to on the machine that ran it (set it to force a value)."""

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ConfigError(problems[0])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_problems(config: Config) -> list[str]:
    """Why `config` cannot work: combinations of features and settings refused when it is read."""
    problems = _feature_problems(config.features)
    task = TASKS.get(config.loss.objective)
    if task is None:
        problems.append(f"loss.objective must be one of {', '.join(TASKS)}, got {config.loss.objective!r}")
    else:
        problems += task.problems(config)
    problems += aux_task_problems(config)
    problems += _encoder_problems(config.encoder)
    problems += _token_reader_problems(config.encoder, config.features)
    if config.features.enabled() and config.encoder.M + config.encoder.private_slots < 1:
        problems.append("features read the latent: encoder.M must be >= 1")
    return problems + value_problems(config)


def _feature_problems(f: FeaturesConfig) -> list[str]:
    """The receiver features' settings that cannot work."""
    problems = []
    if f.lora.enabled and (f.lora.rank < 1 or not f.lora.targets):
        problems.append("features.lora.enabled needs lora.rank >= 1 and at least one lora.targets module")
    if f.deep_prefix.enabled and f.deep_prefix.rank < 1:
        problems.append("features.deep_prefix.enabled needs deep_prefix.rank >= 1")
    if f.latent_adapters.enabled:
        if f.latent_adapters.every < 1 and not f.latent_adapters.layers:
            problems.append("features.latent_adapters.enabled needs latent_adapters.every >= 1 or explicit layers")
        if any(layer < 0 for layer in f.latent_adapters.layers):
            problems.append("features.latent_adapters.layers must be >= 0")
    if f.coprocessor.enabled and (f.coprocessor.entries < 1 or f.coprocessor.width < 8):
        problems.append("features.coprocessor.enabled needs coprocessor.entries >= 1 and width >= 8")
    return problems


def _encoder_problems(e: EncoderConfig) -> list[str]:
    """The encoder's settings that cannot work (the token reader's apart: _token_reader_problems)."""
    problems = []
    if e.input not in ("prompt", "context"):
        problems.append(f"encoder.input must be prompt or context, got {e.input!r}")
    if e.select not in ("surprise", "prefix", "prune"):
        problems.append(f"encoder.select must be surprise, prefix or prune, got {e.select!r}")
    if not 0 < e.keep_ratio <= 1:
        problems.append(f"encoder.keep_ratio must be in (0, 1], got {e.keep_ratio}")
    if e.tokens_per_slot < 1 or e.d_z % e.tokens_per_slot:
        problems.append(f"encoder.tokens_per_slot must be >= 1 and divide encoder.d_z={e.d_z}, "
                        f"got {e.tokens_per_slot}")
    elif e.kind != "token_code" and (e.tokens_per_slot != 1 or e.select != "surprise"):
        problems.append("encoder.tokens_per_slot and encoder.select apply to encoder.kind=token_code only")
    return problems


MERGE_NAMES = ("weighted", "mlp", "mlp_relative")
"""The token reader's merges (latentwire.adapters.token_merge.MERGES, whose keys a test holds equal to these)."""


def _token_reader_problems(e: EncoderConfig, f: FeaturesConfig) -> list[str]:
    """The token reader's settings (encoder.kind=token_ids) that cannot work, or that are set for another kind."""
    if e.kind != "token_ids":
        if e.ks != [2] or e.merge != "weighted" or e.unigram or e.focus or e.coder != "unigram" or e.bigram \
                or e.merge_layer or e.layer_pool != "mean":
            return ["encoder.ks, encoder.merge, encoder.unigram, encoder.coder, encoder.bigram, encoder.focus, "
                    "encoder.merge_layer and encoder.layer_pool apply to encoder.kind=token_ids only"]
        return []
    problems = []
    if not e.ks or any(not 1 <= k <= 4 for k in e.ks):
        problems.append(f"encoder.ks must list tokens a position in 1..4, got {e.ks}")
    if e.merge not in MERGE_NAMES:
        problems.append(f"encoder.merge must be weighted, mlp or mlp_relative, got {e.merge!r}")
    if e.coder not in ("unigram", "bigram") or (e.bigram and e.coder != "bigram"):
        problems.append(f"encoder.coder must be unigram or bigram (encoder.bigram needs bigram), got {e.coder!r}")
    if e.focus and e.input != "context":
        problems.append("encoder.focus needs encoder.input=context (the receiver focuses the context it was "
                        "sent, for the question it holds)")
    if e.focus < 0 or e.focus_scorer not in ("lexical", "minilm") or not 0 <= e.focus_share <= 1:
        problems.append(f"encoder.focus must be >= 0, encoder.focus_scorer lexical or minilm and "
                        f"encoder.focus_share in [0, 1], got {e.focus}, {e.focus_scorer!r}, {e.focus_share}")
    if e.merge_layer < 0 or (e.merge_layer and e.focus and e.focus_share > 0):
        problems.append(f"encoder.merge_layer must be >= 0 (0: off) and reads uniform groupings only (with it "
                        f"set encoder.focus_share=0), got {e.merge_layer} with focus_share {e.focus_share}")
    if e.layer_pool not in ("mean", *MERGE_NAMES) or (e.layer_pool != "mean"
                                                                            and not e.merge_layer):
        problems.append(f"encoder.layer_pool must be mean, weighted, mlp or mlp_relative, and other than mean "
                        f"only with encoder.merge_layer >= 1, got {e.layer_pool!r} with merge_layer {e.merge_layer}")
    if e.pool_hidden < 1:
        problems.append(f"encoder.pool_hidden must be >= 1 (the learned layer pool's hidden width), "
                        f"got {e.pool_hidden}")
    if e.private_slots or any(name != "lora" for name in f.enabled()):
        problems.append("encoder.kind=token_ids reads with LoRA only (no private slots, deep prefix, latent "
                        "adapters or coprocessor)")
    return problems


_MINIMUMS = {
    "data.n": 0, "data.max_context_chars": 1,
    "eval.budgets": 1, "eval.batch_size": 1, "eval.max_new_tokens": 1, "eval.threads": 0, "eval.sentences": 1,
    "eval.timing_n": 0, "eval.ks": 1,
    "encoder.M": 1, "encoder.d_z": 1, "encoder.width": 1, "encoder.layers": 1, "encoder.heads": 1,
    "encoder.max_input": 1, "encoder.private_slots": 0,
    "loss.K": 1, "loss.kd_top_k": 1, "loss.first_token_weight": 0, "loss.ce_weight": 0, "loss.kd_weight": 0,
    "loss.self_kd_weight": 0, "loss.self_states_weight": 0,
    "loss.shuffle_weight": 0,
    "train.steps": 0, "train.batch_size": 1, "train.grad_accum": 1, "train.lr": 0, "train.warmup": 0,
    "train.weight_decay": 0, "train.n_train": 0, "train.log_every": 1, "train.save_every": 1,
    "train.max_bad_steps": 0,
    "serve.port": 1, "serve.max_body_bytes": 256, "serve.queue_limit": 1, "serve.max_batch": 1,
    "serve.batch_wait_ms": 0,
}
"""Smallest allowed value of each numeric field (of every entry, for a list)."""
_POSITIVE = ("loss.kd_tau", "train.clip", "serve.timeout_s")
"""Float fields that must be > 0."""
RECEIVER_DTYPES = ("auto", "float32", "bfloat16", "float16")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")


def value_problems(config: Config) -> list[str]:
    """Why single values of `config` cannot work: numbers out of range, unknown bit widths or dtypes, receivers."""
    problems = []
    for name, minimum in [*_MINIMUMS.items(), *((name, None) for name in _POSITIVE)]:
        section, key = name.split(".")
        value = getattr(getattr(config, section), key)
        values = value if isinstance(value, list) else [value]
        if any(v <= 0 if minimum is None else v < minimum for v in values):
            rule = "> 0" if minimum is None else f">= {minimum}"
            problems.append(f"{name} must be {rule}{' (every entry)' if isinstance(value, list) else ''}, "
                            f"got {value}")
    if config.encoder.heads >= 1 and config.encoder.width % config.encoder.heads:
        problems.append(f"encoder.width={config.encoder.width} must be a multiple of "
                        f"encoder.heads={config.encoder.heads}")
    for name, value in (("wire.bits", config.wire.bits), ("wire.eval_bits", config.wire.eval_bits)):
        if any(bits not in BIT_WIDTHS for bits in (value if isinstance(value, list) else [value])):
            problems.append(f"{name} must be one of {', '.join(map(str, BIT_WIDTHS))}, got {value}")
    if not 1 <= config.wire.group_size <= MAX_GROUP_SIZE:
        problems.append(f"wire.group_size must be in 1..{MAX_GROUP_SIZE}, got {config.wire.group_size}")
    if any(not 0 < rate <= 1 for rate in config.eval.rates):
        problems.append(f"eval.rates must be in (0, 1] (every entry), got {config.eval.rates}")
    if any(not 1 <= k <= 4 for k in config.eval.ks):
        problems.append(f"eval.ks must list tokens a position in 1..4 (every entry), got {config.eval.ks}")
    if not 0 <= config.eval.max_position_share <= 1:
        problems.append(f"eval.max_position_share must be in [0, 1] (0: no budget), got "
                        f"{config.eval.max_position_share}")
    if unknown := [name for name in config.eval.leave_out if name not in LEAVE_OUTS]:
        problems.append(f"eval.leave_out must list rules among {', '.join(LEAVE_OUTS)}, got {unknown}")
    if config.eval.merge_layer < 1:
        problems.append(f"eval.merge_layer must be >= 1 (a decoder layer), got {config.eval.merge_layer}")
    if not 1 <= config.eval.salient_run_k <= 4:
        problems.append(f"eval.salient_run_k must be in 1..4, got {config.eval.salient_run_k}")
    elif "latent_salient" in config.eval.methods and max(config.eval.ks, default=1) > config.eval.salient_run_k:
        problems.append(f"eval.ks={config.eval.ks} with latent_salient: every k must be <= eval.salient_run_k="
                        f"{config.eval.salient_run_k} (a k's positions cannot hold the runs read at salient_run_k)")
    if config.eval.regime not in REGIMES:
        problems.append(f"eval.regime must be one of {', '.join(REGIMES)}, got {config.eval.regime!r}")
    if any(c not in CODING_NAMES[:-1] for c in config.eval.codings):
        problems.append(f"eval.codings must be among {', '.join(CODING_NAMES[:-1])}, got {config.eval.codings}")
    if config.dtype not in RECEIVER_DTYPES:
        problems.append(f"dtype must be one of {', '.join(RECEIVER_DTYPES)}, got {config.dtype!r}")
    if config.resolved_dtype not in ("", *RECEIVER_DTYPES[1:]):
        problems.append(f"resolved_dtype must be empty or one of {', '.join(RECEIVER_DTYPES[1:])}, "
                        f"got {config.resolved_dtype!r}")
    if not 1 <= config.serve.port <= 65535:
        problems.append(f"serve.port must be in 1..65535, got {config.serve.port}")
    if config.train.mixed_precision not in MIXED_PRECISION:
        problems.append(f"train.mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                        f"got {config.train.mixed_precision!r}")
    if config.train.init_from and config.train.continue_from:
        problems.append("train.init_from and train.continue_from exclude each other (a new stage, or a run "
                        "continued)")
    for name in ("self_kd_weight", "self_states_weight"):
        if getattr(config.loss, name) > 0 and config.encoder.kind != "token_ids":
            problems.append(f"loss.{name} applies to encoder.kind=token_ids (its teacher is the reader at k = 1)")
    if config.train.init_new_lora and not (config.train.init_from and config.features.lora.enabled):
        problems.append("train.init_new_lora needs train.init_from and features.lora.enabled (it lets the "
                        "loaded reader lack LoRA modules that this config adds)")
    if config.train.init_fresh and not config.train.init_from:
        problems.append("train.init_fresh needs train.init_from (it names what a loaded stage does not start from)")
    unknown = [name for name in config.train.readers if name not in [r.name for r in config.receivers]]
    if unknown or len(set(config.train.readers)) < len(config.train.readers):
        problems.append(f"train.readers must name distinct receivers of this run "
                        f"({', '.join(r.name for r in config.receivers)}), got {config.train.readers}")
    return problems + _receiver_problems(config.receivers)


def _receiver_problems(receivers: list[ReceiverConfig]) -> list[str]:
    """At least one receiver, each with a model, a known dtype and a name no other receiver has."""
    if not receivers:
        return ["receivers must name at least one receiver (an offline name, a Hugging Face id or a local dir)"]
    problems, names = [], [r.name for r in receivers]
    for i, receiver in enumerate(receivers):
        if not receiver.name or not receiver.model:
            problems.append(f"receivers[{i}] needs a non-empty name and model, got {receiver.name!r}, "
                            f"{receiver.model!r}")
        if receiver.dtype not in RECEIVER_DTYPES:
            problems.append(f"receivers[{i}].dtype must be one of {', '.join(RECEIVER_DTYPES)}, "
                            f"got {receiver.dtype!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"receivers must have distinct names; {twice} appear more than once "
                        f"(give each a name, e.g. a YAML list of {{name, model}})")
    return problems


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Turn a YAML/CLI value into the field's declared type, or raise ConfigError."""
    origin = get_origin(hint)
    if hint is ReceiverConfig and isinstance(value, str):  # receivers=smollm2-135m,qwen2.5-coder-0.5b
        value = {"name": DEFAULT_RECEIVER_NAMES.get(value, value.split("/")[-1].split("-")[0].lower()),
                 "model": value}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(hint, value, where)
    if origin is list:
        (inner,) = get_args(hint)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, list):
            value = [value]
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, str):
            if value.lower() in {"true", "1", "yes"}:
                return True
            if value.lower() in {"false", "0", "no"}:
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        return _to_int(value, where)
    if hint is float:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if math.isnan(number):
            raise ConfigError(f"{where}: expected float (a number), got {value!r}")
        return number
    if hint is str:
        if isinstance(value, bool):   # YAML reads no / yes (e.g. train.mixed_precision=no) as booleans
            return "yes" if value else "no"
        return "" if value is None else str(value)
    return value


def _to_int(value: Any, where: str) -> int:
    """An int field's value: an int, an integer-valued float (3.0) or string ("3"); never a bool or 1.5."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ConfigError(f"{where}: expected int (a whole number), got {value!r}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}".lstrip(".")) for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """`eval.batch_size=4` -> {"eval": {"batch_size": 4}} (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node: dict[str, Any] = {}
    cursor = node
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return node


def read_config_file(path: str | Path, _within: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The values of YAML config file `path`, over those of its `base:` files (a path relative to the file's
    folder, or a list of them applied in order), recursively. A file that is its own base, directly or not,
    raises ConfigError naming the files of the cycle; so does a base that cannot be read, naming it."""
    path = Path(path)
    where = f"config {path}" + (f" (base of {_within[-1]})" if _within else "")
    if path.resolve() in _within:
        raise ConfigError(f"config base cycle: {' -> '.join(map(str, (*_within, path.resolve())))}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(f"cannot read {where}: not UTF-8 text (byte {error.object[error.start]:#04x} "
                          f"at offset {error.start}); expected a YAML file") from None
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {where}: {str(error).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{where} must be a mapping at the top level")
    bases = loaded.pop("base", None)
    bases = [] if bases is None else [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{where}: base must be a path or a list of paths, got {bases!r}")
    values: dict[str, Any] = {}
    for base in bases:
        values = _merge(values, read_config_file(path.parent / base, (*_within, path.resolve())))
    return _merge(values, loaded)


def load_config(path: str | Path | list | tuple | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- YAML file at `path` <- dotted `overrides`; unknown keys raise ConfigError.

    A file may start from other files: a top-level `base:` names one (relative to the file's folder) or a
    list of them, whose values the file overrides (see read_config_file). `path` may also be a list of
    files, applied in order (later ones win), e.g. a recipe and then a stage of it."""
    values = dataclasses.asdict(Config())
    for file in [] if not path else [path] if isinstance(path, (str, Path)) else path:
        loaded = read_config_file(file)
        if "receivers" in loaded:  # a list replaces the default list whole
            values["receivers"] = []
        values = _merge(values, loaded)
    for text in overrides:
        override = parse_override(text)
        if "receivers" in override:
            values["receivers"] = []
        values = _merge(values, override)
    return _build(Config, values, "")


def config_from_dict(values: dict[str, Any]) -> Config:
    """A Config from a (saved) dict; unknown keys raise ConfigError."""
    return _build(Config, _merge(dataclasses.asdict(Config()), values), "")


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as JSON beside a run's outputs."""
    Path(path).write_text(json.dumps(config.to_dict(), indent=2))
