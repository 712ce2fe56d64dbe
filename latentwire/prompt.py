"""Prompt assembly per receiver: template segments, one BOS policy, t=0 answer alignment.

A prompt is three segments: `prefix` (chat header and instruction, text), `content` (question +
context: the part a latent replaces) and `anchor` (end of the user turn, assistant header and the
anchor text). The answer follows the anchor after one space. Every path (text, embeddings, latent,
training targets) uses the same segments and the same BOS policy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from latentwire.errors import AlignmentError, PromptError

if TYPE_CHECKING:   # the config is read here, never imported: config -> tasks -> prompt
    from latentwire.config import PromptConfig

_SLOT = "\u0000CONTENT\u0000"
BOS_POLICIES = ("model", "always", "never")
CONTEXT_LABEL = "Context:"
"""What the content segment puts before the context (a context-only latent carries it with the context)."""


def format_content(question: str, context: str) -> str:
    """The content segment: what a sender would otherwise transmit as text."""
    return f"{CONTEXT_LABEL} {context}\nQuestion: {question}" if context else f"Question: {question}"


def split_content(question: str, context: str, carried: str = "prompt") -> tuple[str, str]:
    """(the part of the content a latent carries, the part that travels as text right after it).

    carried = prompt: the whole content is in the latent; context: only the context, and the
    question follows as text. The two parts always join to `format_content(question, context)`.
    """
    if carried == "context" and context:
        return f"{CONTEXT_LABEL} {context}", f"\nQuestion: {question}"
    return format_content(question, context), ""


@dataclass
class PromptBuilder:
    """Builds token ids of each prompt segment for one receiver's tokenizer."""

    tokenizer: PreTrainedTokenizerBase
    config: PromptConfig
    model_name: str = "receiver"

    def __post_init__(self) -> None:
        tok, cfg = self.tokenizer, self.config
        if cfg.bos not in BOS_POLICIES:
            raise PromptError(f"prompt.bos must be one of {BOS_POLICIES}, got {cfg.bos!r}")
        self.add_bos = {"model": bool(getattr(tok, "add_bos_token", False)), "always": True,
                        "never": False}[cfg.bos]
        if self.add_bos and tok.bos_token_id is None:
            raise PromptError(f"{self.model_name}: prompt.bos={cfg.bos} but the tokenizer has no BOS token")
        self.uses_chat_template = bool(cfg.use_chat_template and getattr(tok, "chat_template", None))
        if self.uses_chat_template:
            rendered = tok.apply_chat_template(
                [{"role": "system", "content": cfg.instruction}, {"role": "user", "content": _SLOT}],
                tokenize=False, add_generation_prompt=True)
            prefix, tail = rendered.split(_SLOT)
            self.prefix_text, self.anchor_text = prefix, tail + cfg.anchor
        else:
            self.prefix_text, self.anchor_text = cfg.instruction + "\n\n", "\n" + cfg.anchor
        self.prefix_ids = self._bos() + self.encode(self.prefix_text)
        self.anchor_ids = self.encode(self.anchor_text)
        if self.add_bos and self.prefix_ids[1:2] == [tok.bos_token_id]:
            raise PromptError(f"{self.model_name}: BOS policy adds a BOS but the template starts with one "
                              "too (double BOS); use prompt.bos=never")
        self.stop_ids = sorted({i for i in (tok.eos_token_id, tok.pad_token_id,
                                            tok.convert_tokens_to_ids("<|im_end|>"),
                                            tok.convert_tokens_to_ids("<|endoftext|>"),
                                            tok.convert_tokens_to_ids("<end_of_turn>"))
                                if isinstance(i, int) and i != tok.unk_token_id and i >= 0})
        self.end_id = self._end_id()
        # the id that pads batches: the tokenizer's pad token, else its first stop token
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.stop_ids[0]

    def _end_id(self) -> int | None:
        """The token that closes the receiver's answer: the first token its chat template puts after an
        assistant turn's text, if that is a stop token, else EOS (None if the tokenizer has neither)."""
        tok = self.tokenizer
        if self.uses_chat_template:
            try:
                rendered = tok.apply_chat_template(
                    [{"role": "system", "content": self.config.instruction}, {"role": "user", "content": "Q"},
                     {"role": "assistant", "content": _SLOT}], tokenize=False)
            except (TemplateError, ValueError):   # a template that renders no assistant turn: EOS
                rendered = ""
            tail = self.encode(rendered.split(_SLOT, 1)[1]) if _SLOT in rendered else []
            if tail and tail[0] in self.stop_ids:
                return tail[0]
        return tok.eos_token_id if isinstance(tok.eos_token_id, int) else None

    def _bos(self) -> list[int]:
        return [self.tokenizer.bos_token_id] if self.add_bos else []

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` with no special tokens added (BOS is added only by the policy)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_text(self, content: str) -> str:
        """The whole prompt as one string (without BOS)."""
        return self.prefix_text + content + self.anchor_text

    def prompt_ids(self, content: str) -> list[int]:
        """Ids of the whole prompt, tokenised jointly, BOS per policy: what the text path feeds."""
        return self._bos() + self.encode(self.prompt_text(content))

    def text_positions(self, carried: str, after: str) -> int:
        """The positions `carried` takes in the text prompt of content carried + after: that prompt's ids less
        the ones a latent prompt holds beside its latent (prefix, the ids of `after`, anchor)."""
        rest = len(self.prefix_ids) + len(self.encode(after)) + len(self.anchor_ids)
        return len(self.prompt_ids(carried + after)) - rest

    def segment_ids(self, content: str) -> tuple[list[int], list[int], list[int]]:
        """(prefix, content, anchor) ids tokenised separately: what the embedding/latent paths feed."""
        if not content:
            raise PromptError("empty content")
        return self.prefix_ids, self.encode(content), self.anchor_ids

    def answer_ids(self, content: str, answer: str) -> list[int]:
        """Ids of `answer` as the receiver reads it right after the anchor (t=0 aligned).

        Tokenises prompt + " " + answer jointly and splits at the prompt's length; raises
        AlignmentError naming the model and the tokens if the prompt's ids are not a prefix.
        """
        answer = answer.strip()
        if not answer:
            raise AlignmentError(f"{self.model_name}: empty answer")
        prompt = self.prompt_ids(content)
        joint = self._bos() + self.encode(self.prompt_text(content) + " " + answer)
        if joint[:len(prompt)] != prompt:
            tok = self.tokenizer
            raise AlignmentError(
                f"{self.model_name}: t=0 misalignment for answer {answer!r}: prompt ends with "
                f"{tok.convert_ids_to_tokens(prompt[-3:])} but prompt+answer has "
                f"{tok.convert_ids_to_tokens(joint[len(prompt) - 3:len(prompt) + 2])}")
        ids = joint[len(prompt):]
        special = set(self.tokenizer.all_special_ids)
        if not ids or any(i in special for i in ids):
            raise AlignmentError(f"{self.model_name}: answer {answer!r} tokenises to special or no tokens: {ids}")
        return ids

    def truncate_context(self, question: str, context: str, budget: int) -> str:
        """The context cut so that the content segment (question + context) fits in `budget` tokens."""
        if len(self.encode(format_content(question, context))) <= budget:
            return context
        overhead = len(self.encode(format_content(question, "x"))) - len(self.encode("x"))
        keep = max(0, budget - overhead)
        ids = self.encode(context)[:keep]
        text = self.tokenizer.decode(ids)
        while keep > 0 and len(self.encode(format_content(question, text))) > budget:
            keep -= 1
            text = self.tokenizer.decode(ids[:keep])
        return text.strip() if keep > 0 else ""
