"""DGO (arXiv 2603.24093) building blocks for the reference trainer: experiences, the experience bank
(retrieval and renewal), the annealed experience mixture, the rule-based experience generator for the
embedded tasks, and the filters of the internalization step.

The K-iteration loop (GRPO on the mixture, renewal, rewrite + SFT) is not built yet: see README.
"""
