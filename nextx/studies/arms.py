"""The demo's and the bench's jump arms: a name → the jump's `GRPORunConfig` fields.

Kept apart (no heavy imports) so the CLI lists them without loading transformers. A variant of an
arm is named with overrides of its jump settings (the ``next_`` prefix left out):
``trend-every:every=25:ahead=50:cap=2:damping=1:at=75`` (`arm_settings`). ``next_ahead``
None means the demo config's ``next_ahead``; "grid" means reward selection's grid of steps ahead.
The "-every" arms jump after the demo's jump step and every 50 steps after it, 25 steps ahead each
time, capped at one interval's motion (``next_cap`` 1) and damped by 0.875 per jump.

The peers (`PEERS`: Lookahead, SFPO) change training from its first step; their variants name their
own settings as written (``sfpo:sfpo_alpha=0.5``). SFPO takes K + 1 updates per rollout batch: the
demo runs it for as many rollout batches as vanilla has steps and measures it in rollout batches.
"""

ONCE = {"next_every": 0, "next_cap": 0, "next_velocity": "total"}  # one uncapped jump (not `nextx train`'s default)
FREQUENT = {"next_every": 50, "next_ahead": 25.0, "next_cap": 1.0, "next_damping": 0.875, "next_apply": "offset",
            "next_velocity": "total"}
# tuned on seeds 100–104 (docs/tuning-seeds-100-104.json): a jump at every checkpoint, one interval
# ahead, capped at the training's own last interval, no damping, extrapolating the training's own path
FAST = {"next_every": 25, "next_ahead": 25.0, "next_cap": 1.0, "next_damping": 1.0, "next_apply": "offset",
        "next_velocity": "trained"}

ARMS = {  # arm → the jump's GRPORunConfig fields (next_ahead None: the config's next_ahead; "grid": reward's grid)
    "next": {**ONCE, "next_method": "next", "next_ahead": None, "next_apply": "refactor"},
    "relex": {**ONCE, "next_method": "relex", "next_ahead": None, "next_apply": "refactor"},
    "linear": {**ONCE, "next_method": "linear", "next_ahead": None, "next_apply": "refactor"},
    "trend": {**ONCE, "next_method": "trend", "next_ahead": None, "next_apply": "refactor"},
    "next-offset": {**ONCE, "next_method": "next", "next_ahead": None, "next_apply": "offset"},
    "next-merge": {**ONCE, "next_method": "next", "next_ahead": None, "next_apply": "merge"},
    "trend-offset": {**ONCE, "next_method": "trend", "next_ahead": None, "next_apply": "offset"},
    "rre-offset": {**ONCE, "next_method": "rre", "next_ahead": None, "next_apply": "offset"},
    "next-every": {"next_method": "next", **FREQUENT},
    "trend-every": {"next_method": "trend", **FREQUENT},
    "trend-fast": {"next_method": "trend", **FAST},
    "trend-fast-verified": {"next_method": "trend", **FAST, "next_verify": 5, "next_adaptive": True},
    # NExt at the fast pace, its cost trimmed: each fit starts from the last one's MLPs, 200 epochs (not 1000)
    "next-fast": {"next_method": "next", **FAST, "next_warm": True, "next_epochs": 200},
    "reward": {**ONCE, "next_method": "auto", "next_ahead": "grid", "next_select": "reward", "next_apply": "refactor"},
    "reward-offset": {**ONCE, "next_method": "auto", "next_ahead": "grid", "next_select": "reward", "next_apply": "offset"},
}


# the in-loop look-ahead peers, with their papers' settings: Lookahead's k = 5, α = 0.5; SFPO's K = 3
# fast steps per rollout batch and reposition α = 0.8 (its entropy-triggered switch to α = 0 is not built)
PEERS = {
    "lookahead": {"lookahead": 5, "lookahead_alpha": 0.5},
    "sfpo": {"sfpo": 3, "sfpo_alpha": 0.8},
    # both: SFPO's updates and trend-fast's jumps (its steps in rollout batches: the demo scales them)
    "sfpo-trend-fast": {"sfpo": 3, "sfpo_alpha": 0.8, "next_method": "trend", **FAST},
}
ARMS.update(PEERS)


DEMO_ARMS = ("trend-fast",)  # `nextx demo`'s default arm: the variant that measured best on the tuning seeds
DEMO_SEEDS = (0, 1, 2, 3)  # `nextx demo`'s seeds: reporting seeds, never used to tune (those are 100–104);
# four run two at a time in ~7 minutes on 2 idle cores, a fifth would run alone for 3 more


def arm_settings(arm: str) -> dict:
    """The run settings of ``arm``: a name in ARMS, or NAME:KEY=VALUE:... overriding its ``next_KEY``
    settings (a peer's: its own KEY; numbers read as numbers). ValueError names what is wrong."""
    name, *overrides = arm.split(":")
    if name not in ARMS:
        raise ValueError(f"unknown arm {name!r}")
    settings = dict(ARMS[name])
    for item in filter(None, overrides):
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"arm {arm!r}: {item!r} is not KEY=VALUE")
        if is_peer(name) and key not in settings:
            raise ValueError(f"arm {arm!r}: {name} has no setting {key!r} (it has {', '.join(settings)})")
        settings[key if is_peer(name) else "next_" + key] = _value(text.strip())
    return settings


def is_peer(arm: str) -> bool:
    """A look-ahead peer (changes training from step 0), not a jump arm."""
    return arm.split(":")[0] in PEERS


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None if text == "none" else text
