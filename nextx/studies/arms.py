"""The demo's and the bench's jump arms: a name → the jump's `GRPORunConfig` fields.

Kept apart (no heavy imports) so the CLI lists them without loading transformers. ``next_ahead``
None means the demo config's ``next_ahead``; "grid" means reward selection's grid of steps ahead.
The "-every" arms jump after the demo's jump step and every 50 steps after it, 25 steps ahead each
time, capped at one interval's motion (``next_cap`` 1) and damped by 0.875 per jump.
"""

FREQUENT = {"next_every": 50, "next_ahead": 25.0, "next_cap": 1.0, "next_damping": 0.875, "next_apply": "offset"}

ARMS = {  # arm → the jump's GRPORunConfig fields (next_ahead None: the config's next_ahead; "grid": reward's grid)
    "next": {"next_method": "next", "next_ahead": None, "next_apply": "refactor"},
    "relex": {"next_method": "relex", "next_ahead": None, "next_apply": "refactor"},
    "linear": {"next_method": "linear", "next_ahead": None, "next_apply": "refactor"},
    "trend": {"next_method": "trend", "next_ahead": None, "next_apply": "refactor"},
    "next-offset": {"next_method": "next", "next_ahead": None, "next_apply": "offset"},
    "next-merge": {"next_method": "next", "next_ahead": None, "next_apply": "merge"},
    "trend-offset": {"next_method": "trend", "next_ahead": None, "next_apply": "offset"},
    "rre-offset": {"next_method": "rre", "next_ahead": None, "next_apply": "offset"},
    "next-every": {"next_method": "next", **FREQUENT},
    "trend-every": {"next_method": "trend", **FREQUENT},
    "reward": {"next_method": "auto", "next_ahead": "grid", "next_select": "reward", "next_apply": "refactor"},
    "reward-offset": {"next_method": "auto", "next_ahead": "grid", "next_select": "reward", "next_apply": "offset"},
}
