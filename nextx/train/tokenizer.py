"""A character-level tokenizer for the embedded tasks, as a transformers PreTrainedTokenizerFast.

One token per character plus <pad>, <eos>, <unk>; decoding concatenates characters. Built locally
(no download) and saved beside the tiny model, so every tool can load it with from_pretrained.
"""

from __future__ import annotations

SPECIALS = ["<pad>", "<eos>", "<unk>"]


def char_tokenizer(alphabet: str):
    """PreTrainedTokenizerFast with vocabulary SPECIALS + sorted(alphabet)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + sorted(set(alphabet)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tokenizer.padding_side = "left"
    return tokenizer
