"""Experiences (DGO §3.2.1): the ``WHEN … IF … THEN …`` line, the prompts that carry them, and the
generators that write them. Below both DGO (`nextx.train.dgo`) and the tiny model, whose DGO
variant learns to read them before RL."""
