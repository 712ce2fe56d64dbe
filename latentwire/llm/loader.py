"""Load a frozen receiver LLM and its tokenizer: offline registry name, HF id or local dir."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import utils as hf_utils
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from latentwire.atomic import atomic_directory
from latentwire.llm.offline import OFFLINE_MODELS, OfflineModelError, cache_root, resolve_gguf

hf_utils.logging.disable_progress_bar()

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def load_receiver(source: str, name: str | None = None, dtype: str = "float32",
                  device: str = "cpu") -> Receiver:
    """Load `source` (an offline registry name, a Hugging Face id or a local dir) frozen, in eval mode.

    Offline GGUF models are de-quantised on first use and cached as safetensors under
    `latentwire.llm.offline.cache_root()`, so later loads take seconds.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    start = time.perf_counter()
    torch_dtype = _DTYPES[dtype]
    if source in OFFLINE_MODELS:
        entry = OFFLINE_MODELS[source]
        cached = cache_root() / "models" / f"{entry.name}-{entry.sha256[:12]}"
        if not (cached / "latentwire.json").is_file():
            gguf = resolve_gguf(source)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            _write_cache(model, tokenizer, cached, {"name": entry.name, "sha256": entry.sha256,
                                                    "origin": entry.origin})
            if gguf.is_relative_to(cache_root()):
                gguf.unlink(missing_ok=True)  # an assembled copy of the chunks: the safetensors cache replaces it
        path = str(cached)
    else:
        path = source
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as error:
        known = ", ".join(sorted(OFFLINE_MODELS))
        raise OfflineModelError(
            f"cannot load receiver {source!r} (offline names: {known}; otherwise a HF id or local dir): "
            f"{str(error).splitlines()[0]}") from error
    model.to(device)
    freeze(model)
    return Receiver(name=name or source, model=model, tokenizer=tokenizer, source=source,
                    load_seconds=time.perf_counter() - start)
