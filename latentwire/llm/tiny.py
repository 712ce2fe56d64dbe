"""Tiny random receivers built from configs, with a small byte-level BPE tokenizer trained in-code: what the
tests and bench/reliability.py run the machinery on (decoding, checkpoints, resume), not model quality."""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from latentwire.llm.loader import Receiver, freeze

__all__ = ["CHATML", "CORPUS", "tiny_tokenizer", "tiny_receiver", "save_tiny_pair"]

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CORPUS = ["Context: Paris is the capital of France and a big city.", "Question: What is the capital?",
          "Answer: Paris", "The Normans were in Normandy in the 10th and 11th centuries.",
          "Who wrote it? When was it built? How many people live there? 1999 2001 42"] * 20


def tiny_tokenizer(chat: bool = True, add_bos: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (a few hundred tokens) with ChatML special tokens."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>",
                                        eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_bos_token = add_bos
    if chat:
        tokenizer.chat_template = CHATML
    return tokenizer


def tiny_receiver(arch: str = "llama", seed: int = 0, **tokenizer_kwargs) -> Receiver:
    """A frozen 2-layer random Llama, Qwen2 or Gemma3 receiver with the tiny tokenizer."""
    tokenizer = tiny_tokenizer(**tokenizer_kwargs)
    common = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif arch == "gemma3":  # one sliding-window layer (window 8) and one full-attention layer
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig
        model = Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=8, sliding_window=8,
                                                   layer_types=["sliding_attention", "full_attention"]))
    else:
        raise ValueError(arch)
    return Receiver(name=f"tiny-{arch}", model=freeze(model), tokenizer=tokenizer, source=f"tiny-{arch}")


def save_tiny_pair(root: str | Path) -> list[Path]:
    """Save a tiny llama (seed 0) and qwen2 (seed 1) receiver as local model dirs under root; their paths."""
    paths = []
    for arch, seed in (("llama", 0), ("qwen2", 1)):
        receiver = tiny_receiver(arch, seed=seed)
        receiver.model.save_pretrained(Path(root) / arch)
        receiver.tokenizer.save_pretrained(Path(root) / arch)
        paths.append(Path(root) / arch)
    return paths
