"""A character-level tokenizer for the embedded tasks, as a transformers PreTrainedTokenizerFast.

One token per character plus <pad>, <eos>, <unk>; decoding concatenates characters. Built locally
(no download) and saved beside the tiny model, so every tool can load it with from_pretrained.

``words`` (DGO's variant): each of these whole words or phrases, alone or after one space, is one
token too, the longest that fits first (a 20-word experience line is ~25 word tokens, or 9 with its
three clauses as phrases, not 110 characters); any other text is still split into characters, so
nothing becomes <unk>.
"""

from __future__ import annotations

SPECIALS = ["<pad>", "<eos>", "<unk>"]


def char_tokenizer(alphabet: str, words: tuple[str, ...] = ()):
    """PreTrainedTokenizerFast with vocabulary SPECIALS + sorted(alphabet) (+ each word and " " + word)."""
    import re

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(words), key=lambda w: (-len(w), w))  # longest first: the regex takes the first that fits
    tokens = SPECIALS + sorted(set(alphabet)) + [p + w for w in words for p in ("", " ")]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}  # a one-letter word is a character already
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    whole = f" ?(?<![A-Za-z-])(?:{'|'.join(map(re.escape, words))})(?![A-Za-z-])|." if words else "."
    core.pre_tokenizer = pre_tokenizers.Split(Regex(whole), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tokenizer.padding_side = "left"
    return tokenizer
