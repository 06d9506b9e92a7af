"""DGO (arXiv 2603.24093) in the reference trainer: experiences (`experience`), the experience bank
(`bank`: file, retrieval, renewal; `retrieval`: TF-IDF or a sentence encoder), the annealed mixture
(`schedule`), generators (`generator`: rules for the embedded task, or a causal LM), prompts
(`prompts`), rewriting and its filter (`rewrite`, `filters`), the K-iteration loop (`loop`:
``nextx train --algo dgo``) and the GRPO-vs-DGO comparison (`compare`: ``nextx demo --algo dgo``).
"""
