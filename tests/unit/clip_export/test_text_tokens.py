"""The zero-shot tooling's tokenisation equals Hugging Face's CLIPTokenizer, id for id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import CLIPTokenizer

from clip_export.text_tokens import CONTEXT_LENGTH, TextTokens, build_offline_tokenizer

TRICKY = [
    "a photo of a dog.",
    "A PHOTO OF THE LARGE Dog!",
    "Café  東京 🙂!!",
    "naïve résumé — “quoted” ‘text’ … ½",
    "  multiple   spaces\tand\nnewlines ",
    "it's a dog's life, isn't it? we'll see; they'd've",
    "punctuation!!! ??? ... --- ((brackets)) [x] {y} <z>",
    "numbers 12345 and 3.14159 and 1e-10",
    "emoji 👨‍👩‍👧‍👦 family and flags 🇫🇷",
    "",
    "<|endoftext|> a special token in the text",
    "word " * 200,  # over-long: truncated to 77 with <|endoftext|> kept last
    "supercalifragilisticexpialidocious" * 10,
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    build_offline_tokenizer(folder)
    return folder


def test_ids_equal_clip_tokenizer_on_tricky_strings(tokenizer_dir: Path) -> None:
    ours = TextTokens(tokenizer_dir / "tokenizer.json").encode(TRICKY)
    reference = CLIPTokenizer.from_pretrained(str(tokenizer_dir))(
        TRICKY, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True, return_tensors="np"
    )["input_ids"]
    assert ours.shape == (len(TRICKY), CONTEXT_LENGTH) and ours.dtype == np.int64
    for text, a, b in zip(TRICKY, ours, reference, strict=True):
        assert a.tolist() == b.tolist(), text


def test_truncation_keeps_the_end_token_last_and_short_text_is_padded(tokenizer_dir: Path) -> None:
    tokens = TextTokens(tokenizer_dir / "tokenizer.json")
    long, short = tokens.encode(["word " * 200, "a dog"])
    assert long[0] == tokens.bos_id and long[-1] == tokens.eos_id and (long[1:-1] != tokens.eos_id).all()
    end = int(np.argmax(short == tokens.eos_id))
    assert short[0] == tokens.bos_id and 2 < end < 10 and (short[end:] == tokens.pad_id).all()
    # <|endoftext|> has the highest id, as in CLIP's vocabulary (the tower pools at the first one).
    assert tokens.eos_id == max(tokens.bos_id, tokens.eos_id) and tokens.pad_id == tokens.eos_id


def test_the_offline_tokenizer_merges_words_with_bpe(tokenizer_dir: Path) -> None:
    tokens = TextTokens(tokenizer_dir / "tokenizer.json")
    photo, unknown = tokens.encode(["photo", "zqxj"])
    assert int(np.argmax(photo == tokens.eos_id)) == 2  # <bos> photo</w> <eos>: one merged token
    assert int(np.argmax(unknown == tokens.eos_id)) == 5  # no merges: one token per letter
