"""What training says about a jump after it is made: the adaptive pace and the free verification.

* **Adaptive pace.** At the first checkpoint after a jump of ``ahead`` steps at T, the training's own
  motion since T, m = W_{T+Δ} − W_T (the LoRA path), is projected on the jump d = Ŵ − W_T:
  ρ = ⟨m, d⟩ / (‖d‖²·Δ/ahead) — 1 when training went on exactly as predicted, < 0 when it turned back.
  ρ ≥ ``keep`` grows the next jumps (× ``grow``), ρ < 0 shrinks them (× ``shrink``), within bounds.
* **Verification and exact rollback.** The on-policy reward GRPO computes anyway, averaged over the
  ``verify`` steps after the jump, is compared with the ``verify`` steps before it; if it fell by more
  than ``z`` standard errors (Welch), the jump is undone — its factored term subtracted from the base,
  W₀ ← W₀ − L·R — and the pace shrinks. Every verdict goes into the jump's record.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import torch

from nextx.io.adapter import lora_factors


def inner(x: tuple[torch.Tensor, torch.Tensor], y: tuple[torch.Tensor, torch.Tensor]) -> float:
    """⟨L₁R₁, L₂R₂⟩ (Frobenius) in factored form: Σ (L₁ᵀL₂) ∘ (R₁R₂ᵀ)."""
    return float(((x[0].double().T @ y[0].double()) * (x[1].double() @ y[1].double().T)).sum())


def lora_motion(spec, now: tuple[torch.Tensor, torch.Tensor], then: tuple[torch.Tensor, torch.Tensor]):
    """s·B·A at ``now`` minus at ``then`` (each (A, B)), factored in the stored orientation."""
    left_now, right_now = lora_factors(now[1], now[0], spec.scaling, spec.transposed)
    left_then, right_then = lora_factors(then[1], then[0], spec.scaling, spec.transposed)
    return torch.cat([left_now, -left_then], 1), torch.cat([right_now, right_then], 0)


@dataclass
class Feedback:
    """The adaptive pace's scale and the verification of the last jump (see the module docstring)."""

    adaptive: bool = False
    verify: int = 0  # on-policy reward steps compared before / after a jump (0: no verification)
    z: float = 2.0
    grow: float = 1.5
    shrink: float = 0.5
    keep: float = 0.5
    bounds: tuple[float, float] = (0.125, 4.0)
    scale: float = 1.0
    rewards: dict[int, float] = field(default_factory=dict)
    pending: dict | None = None  # the last jump: its record, step, changes, the factors at its step

    def watch(self, record: dict, step: int, changes: dict, factors_at_step: dict) -> None:
        if changes and (self.adaptive or self.verify):
            self.pending = {"record": record, "step": step, "changes": changes, "factors": factors_at_step,
                            "measured": not self.adaptive, "verified": not self.verify}

    def measure(self, step: int, specs: dict, factors_now: dict) -> float | None:
        """ρ of the pending jump at the first checkpoint after it (None if there is nothing to measure);
        updates the scale."""
        jump = self.pending
        if jump is None or jump["measured"] or step <= jump["step"]:
            return None
        jump["measured"] = True
        ahead = jump["record"]["ahead_steps"] or 1.0
        dot = norm = 0.0
        for name, change in jump["changes"].items():
            dot += inner(lora_motion(specs[name], factors_now[name], jump["factors"][name]), change)
            norm += inner(change, change)
        rho = dot / (norm * (step - jump["step"]) / ahead) if norm > 0 else 0.0
        if rho >= self.keep:
            self._rescale(self.grow)
        elif rho < 0:
            self._rescale(self.shrink)
        jump["record"].update(realised_ratio=rho, pace_scale=self.scale)
        return rho

    def verdict(self, step: int, reward: float) -> bool:
        """Record the step's reward; True when the pending jump should be rolled back (its record
        says why either way)."""
        self.rewards[step] = float(reward)
        jump = self.pending
        if jump is None or jump["verified"]:
            return False
        before = [r for s, r in sorted(self.rewards.items()) if s <= jump["step"]][-self.verify:]
        after = [r for s, r in sorted(self.rewards.items()) if s > jump["step"]]
        if len(after) < self.verify:
            return False
        jump["verified"] = True
        mean_before = statistics.fmean(before) if before else math.nan
        mean_after = statistics.fmean(after[: self.verify])
        se = math.sqrt(sum(statistics.variance(x) / len(x) for x in (before, after[: self.verify]) if len(x) > 1))
        fell = bool(before) and mean_after < mean_before - self.z * se
        jump["record"].update(verified="rolled back" if fell else "accepted", reward_before=mean_before,
                              reward_after=mean_after, reward_se=se, verified_at=step)
        if fell:
            self._rescale(self.shrink)
            jump["record"]["pace_scale"] = self.scale
        return fell

    def _rescale(self, factor: float) -> None:
        low, high = self.bounds
        self.scale = min(high, max(low, self.scale * factor))
