"""Load a frozen receiver LLM and its tokenizer: offline registry name, HF id or local dir."""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import utils as hf_utils
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from latentwire.atomic import atomic_directory
from latentwire.llm.offline import OFFLINE_MODELS, OfflineModelError, cache_root, resolve_gguf
from latentwire.precision import TORCH_DTYPES, resolve_dtype

hf_utils.logging.disable_progress_bar()


@dataclass
class Receiver:
    """A frozen causal LM addressed by name, with its tokenizer."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str            # what was asked for (registry name, hub id or path)
    load_seconds: float = 0.0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings [B, T, d_model] of token ids [B, T], exactly as the model embeds them."""
        return self.model.get_input_embeddings()(input_ids)

    def vocabulary(self) -> dict[str, int]:
        """Token string -> id, for the ids that have an input-embedding row."""
        rows = self.model.get_input_embeddings().weight.shape[0]
        return {s: i for s, i in self.tokenizer.get_vocab().items() if i < rows}


def freeze(model: PreTrainedModel) -> PreTrainedModel:
    """Put `model` in eval mode with every parameter frozen; returns it."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _write_cache(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path, meta: dict) -> None:
    """Save de-quantised weights + tokenizer as safetensors into `target` atomically."""
    model.hf_quantizer = None  # weights are already float; GGUF models refuse to save otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "latentwire.json").write_text(json.dumps(meta, indent=2))


_KINDS = f"offline names: {', '.join(sorted(OFFLINE_MODELS))}; otherwise a Hugging Face id or a local model dir"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _hub_offline() -> bool:
    """Whether Hugging Face hub downloads are off (HF_HUB_OFFLINE now, or when huggingface_hub was imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _model_dir_lacks(directory: Path) -> list[str]:
    """What a local model directory lacks of config.json, *.safetensors weights and a tokenizer file."""
    lacks = [] if (directory / "config.json").is_file() else ["config.json"]
    if not any(directory.glob("*.safetensors")):
        lacks.append("model weights (*.safetensors)")
    if not any((directory / name).is_file() for name in _TOKENIZER_FILES):
        lacks.append(f"a tokenizer ({' or '.join(_TOKENIZER_FILES)})")
    return lacks


def _check_source(path: str, source: str) -> bool:
    """Raise OfflineModelError unless `path` is a complete local model dir or a Hugging Face id that can
    be reached (hub online, or already in the local HF cache); True for a local dir."""
    directory = Path(path).expanduser()
    if directory.exists():
        if not directory.is_dir():
            raise OfflineModelError(f"receiver {source!r}: {directory} is a file, not a model directory")
        lacks = _model_dir_lacks(directory)
        if lacks:
            raise OfflineModelError(f"receiver {source!r}: directory {directory} holds no model: it lacks "
                                    f"{', '.join(lacks)}")
        return True
    if not _HUB_ID.fullmatch(path) or ".." in path:
        raise OfflineModelError(f"receiver {source!r}: no such directory {directory} ({_KINDS})")
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(path, "config.json")
        except ValueError:  # not a valid repo id either
            cached = None
        if not isinstance(cached, str):
            raise OfflineModelError(f"receiver {source!r} is not an offline name or a local directory, and as a "
                                    f"Hugging Face id it is not in the local cache while the hub is offline "
                                    f"(HF_HUB_OFFLINE=1; set HF_HUB_OFFLINE=0 to download); {_KINDS}")
    return False


def _rows_into_the_head(model: PreTrainedModel) -> None:
    """Make the LM head multiply [N, d] rows. The last position's hidden state [B, 1, d] is a slice that keeps
    the whole sequence's strides, and a bfloat16 matmul on it copies the transposed vocabulary matrix at
    every call (0.4 s of Qwen2.5's 0.9 s prefill on 2 cores); float32 receivers are left as they are."""
    head = model.get_output_embeddings()
    linear = head.forward

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        return linear(hidden.reshape(-1, hidden.shape[-1])).view(*hidden.shape[:-1], -1)
    head.forward = forward


def offline_cache(source: str, dtype: str = "float32") -> Path:
    """The safetensors cache of offline model `source` in `dtype`, made on first use: the GGUF de-quantised to
    float32, other dtypes converted from that (so that a bfloat16 receiver loads as fast and as small as
    its weights, memory-mapped, instead of converting float32 at every load)."""
    entry = OFFLINE_MODELS[source]
    cached = cache_root() / "models" / f"{entry.name}-{entry.sha256[:12]}"
    meta = {"name": entry.name, "sha256": entry.sha256, "origin": entry.origin}
    if not (cached / "latentwire.json").is_file():
        gguf = resolve_gguf(source)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        _write_cache(model, tokenizer, cached, meta)
        if gguf.is_relative_to(cache_root()):
            gguf.unlink(missing_ok=True)  # an assembled copy of the chunks: the safetensors cache replaces it
    if dtype == "float32":
        return cached
    converted = cached.with_name(f"{cached.name}-{dtype}")
    if not (converted / "latentwire.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(cached, dtype=TORCH_DTYPES[dtype], use_safetensors=True)
        _write_cache(model, AutoTokenizer.from_pretrained(cached), converted, {**meta, "dtype": dtype})
    return converted


def load_receiver(source: str, name: str | None = None, dtype: str = "float32",
                  device: str = "cpu") -> Receiver:
    """Load `source` (an offline registry name, a Hugging Face id or a local dir) frozen, in eval mode.

    Offline GGUF models are de-quantised on first use and cached as safetensors under
    `latentwire.llm.offline.cache_root()`, so later loads take seconds.
    """
    start = time.perf_counter()
    resolved = resolve_dtype(dtype, device)
    path = str(offline_cache(source, resolved)) if source in OFFLINE_MODELS else source
    local = _check_source(path, source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        safetensors_only = {"use_safetensors": True} if local else {}  # local checkpoints are never pickles
        model = AutoModelForCausalLM.from_pretrained(path, dtype=TORCH_DTYPES[resolved], **safetensors_only)
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())  # the whole reason on one line, not its first line
        raise OfflineModelError(f"cannot load receiver {source!r} ({_KINDS}): {reason}") from error
    model.to(device)
    freeze(model)
    if TORCH_DTYPES[resolved] != torch.float32:
        _rows_into_the_head(model)
    return Receiver(name=name or source, model=model, tokenizer=tokenizer, source=source,
                    load_seconds=time.perf_counter() - start)
