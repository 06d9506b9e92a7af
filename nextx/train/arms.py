"""The demo's and the bench's jump arms: a name → the jump's `GRPORunConfig` fields.

Kept apart (no heavy imports) so the CLI lists them without loading transformers. ``next_ahead``
None means the demo config's ``next_ahead``; "grid" means reward selection's grid of steps ahead.
"""

ARMS = {  # arm → the jump's GRPORunConfig fields (next_ahead None: the config's next_ahead; "grid": reward's grid)
    "next": {"next_method": "next", "next_ahead": None, "next_apply": "refactor"},
    "relex": {"next_method": "relex", "next_ahead": None, "next_apply": "refactor"},
    "linear": {"next_method": "linear", "next_ahead": None, "next_apply": "refactor"},
    "trend": {"next_method": "trend", "next_ahead": None, "next_apply": "refactor"},
    "next-offset": {"next_method": "next", "next_ahead": None, "next_apply": "offset"},
    "reward": {"next_method": "auto", "next_ahead": "grid", "next_select": "reward", "next_apply": "refactor"},
    "reward-offset": {"next_method": "auto", "next_ahead": "grid", "next_select": "reward", "next_apply": "offset"},
}
