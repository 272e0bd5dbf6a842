"""CLIP's text tokenisation, offline: ``tokenizer.json`` (Hugging Face ``tokenizers``) → fixed-length ids.

CLIP's text tower reads exactly ``context_length`` (77) ids: ``<|startoftext|>``, the byte-level BPE tokens
of the lower-cased, whitespace-normalised text, ``<|endoftext|>``, then padding. Text too long is truncated
so that the last id is still ``<|endoftext|>`` — the token whose hidden state the tower projects — as
``CLIPTokenizer(truncation=True)`` and OpenAI's ``clip.tokenize(truncate=True)`` both do.

A real model id uses that model's own tokenizer (saved by the export). Offline, :func:`build_offline_tokenizer`
makes a small one with CLIP's exact pipeline (normaliser, pre-tokeniser, ``</w>`` word ends, byte-level
alphabet, special tokens last so ``<|endoftext|>`` has the highest id, as in CLIP's vocabulary) and a few
hundred merges from the prompt templates, so tests exercise real BPE merges without the hub.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .prompt_templates import OPENAI_80

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
CONTEXT_LENGTH = 77


class TextTokens:
    """``tokenizer.json`` + the context length → ``[N, context_length]`` int64 ids, padded with ``pad_id``."""

    def __init__(
        self, tokenizer_file: Path, context_length: int = CONTEXT_LENGTH, pad_id: int | None = None
    ) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.context_length = context_length
        bos, eos = self._tokenizer.token_to_id(BOS), self._tokenizer.token_to_id(EOS)
        if bos is None or eos is None:
            raise ValueError(f"{tokenizer_file} has no {BOS} / {EOS} tokens: not a CLIP tokenizer")
        self.bos_id, self.eos_id = bos, eos
        self.pad_id = eos if pad_id is None else pad_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            ids = encoding.ids
            if not ids or ids[0] != self.bos_id:
                ids = [self.bos_id, *ids]
            if ids[-1] != self.eos_id:
                ids = [*ids, self.eos_id]
            if len(ids) > self.context_length:
                ids = [*ids[: self.context_length - 1], self.eos_id]
            out[row, : len(ids)] = ids
        return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character map (the byte-level alphabet)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def _merges_for(words: Iterable[str]) -> list[tuple[str, str]]:
    """Left-to-right merges that build each word (byte-level, ``</w>`` on its last symbol) whole."""
    table = _bytes_to_unicode()
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in words:
        symbols = [table[b] for b in word.encode("utf-8")]
        symbols[-1] += "</w>"
        current = symbols[0]
        for symbol in symbols[1:]:
            pair = (current, symbol)
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
            current += symbol
    return merges


def build_offline_tokenizer(out_dir: Path) -> Path:
    """A small CLIP tokenizer (byte-level BPE, CLIP's pipeline) saved to ``out_dir``; returns tokenizer.json."""
    from transformers import CLIPTokenizer  # the export extra; only this offline builder needs it

    alphabet = list(_bytes_to_unicode().values())
    words = sorted({w for t in OPENAI_80 for w in re.findall(r"[a-z]+", t.replace("{}", ""))})
    merges = _merges_for(words)
    vocab: dict[str, int] = {}
    for token in [*alphabet, *(a + "</w>" for a in alphabet), *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    # tokenizers' BPE takes the merges as pairs (the hint says strings: the slow tokenizer's form).
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH)  # type: ignore[arg-type]
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir / "tokenizer.json"
