"""The look-ahead peers (Lookahead, SFPO) against hand-computed steps, and in the real TRL loop.

Hand computation: SGD with lr 0.5 on L = ½‖θ‖² halves every trainable element per step, so every
element ends at (a scalar worked out below) × its start. Tolerance 1e-6 (float32 weights).
"""

from types import SimpleNamespace

import pytest
import torch

from nextx.train.reposition import RepositionCallback


def _peft_tiny():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=2, target_modules=["q_proj", "down_proj"]))
    with torch.no_grad():  # B starts at 0 in PEFT: give it values so both factors move
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    return model


def _run(callback: RepositionCallback, steps: int):
    """SGD (lr 0.5) on ½‖θ‖², with the callback's hooks called as the HF Trainer calls them."""
    model = _peft_tiny()
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    args, state = SimpleNamespace(deepspeed=None), SimpleNamespace(global_step=0)
    callback.on_train_begin(args, state, None, model=model)
    for _ in range(steps):
        optimizer.zero_grad()
        sum(0.5 * p.pow(2).sum() for p in model.parameters() if p.requires_grad).backward()
        optimizer.step()
        state.global_step += 1
        callback.on_step_end(args, state, None, model=model)
    return model, start


@pytest.mark.parametrize(("callback", "steps", "factor"), [
    # Lookahead k=2, α=0.5: 1 → .5 → .25, back to 1 + .5(.25 − 1) = .625 → .3125 → .15625, back to .390625
    (RepositionCallback.lookahead(2, 0.5), 4, 0.390625),
    # SFPO K=2, α=0.8: fast 1 → .5 → .25, reposition 1 + .8(.25 − 1) = .4, slow step .2;
    # then .1 → .05, reposition .2 + .8(.05 − .2) = .08, slow .04
    (RepositionCallback.sfpo(2, 0.8), 6, 0.04),
    (RepositionCallback.sfpo(2, 0.8), 5, 0.08),  # after the second reposition, before its slow step
])
def test_peer_updates_match_the_hand_computed_steps(callback, steps, factor):
    model, start = _run(callback, steps)
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), factor * start[name], atol=1e-6, rtol=1e-6)
    assert callback.repositions == 2


def test_peers_refuse_deepspeed_and_each_other():
    from nextx.errors import NextxError
    from nextx.train.config import GRPORunConfig

    with pytest.raises(NextxError, match="DeepSpeed's fp32 master copy"):
        RepositionCallback.lookahead(2).on_train_begin(SimpleNamespace(deepspeed="ds.json"),
                                                       SimpleNamespace(global_step=0), None, model=_peft_tiny())
    with pytest.raises(NextxError, match="--lookahead and --sfpo both reposition the weights: choose one"):
        GRPORunConfig(output_dir="x", lookahead=5, sfpo=3)
    with pytest.raises(NextxError, match="--sfpo 3 takes 4 updates per rollout batch, not --num-iterations 2"):
        GRPORunConfig(output_dir="x", sfpo=3, num_iterations=2)


def test_sfpo_in_the_trl_loop_counts_rollout_batches(tmp_path, warm_tiny):
    """SFPO K=1 in the real GRPOTrainer: 4 optimizer steps use 2 rollout batches (half vanilla's rollouts);
    the demo measures it in rollout batches."""
    from nextx.studies.demo import DemoConfig
    from nextx.train.config import GRPORunConfig
    from nextx.train.grpo import train

    rollouts = {}
    for name, extra in (("vanilla", {}), ("sfpo", {"sfpo": 1}), ("lookahead", {"lookahead": 2})):
        record: list = []
        config = GRPORunConfig(output_dir=str(tmp_path / name), model=str(warm_tiny), steps=4, save_every=2,
                               prompts_per_step=4, num_generations=4, **extra)
        result = train(config, log=lambda m: None, record=record)
        rollouts[name] = len(record) // (4 * 4)
        assert sorted(result.save_seconds) == [2, 4] and 0 < result.save_seconds[2] < result.save_seconds[4]
    assert rollouts == {"vanilla": 4, "sfpo": 2, "lookahead": 4}
    demo = DemoConfig(steps=100, save_every=25, arms=("sfpo",))
    run = demo.run_config(tmp_path / "s", 0, "sfpo")
    assert (run.steps, run.save_every, run.sfpo, run.updates_per_rollout(), demo.jump_step("sfpo")) == (400, 100, 3, 4, 0)
    assert run.next_at is None
    both = DemoConfig(steps=100, save_every=25, next_at=50).run_config(tmp_path / "b", 0, "sfpo-trend-fast")
    # SFPO's steps are 4 updates per rollout batch: the jumps' schedule is scaled with them
    assert (both.steps, both.save_every, both.next_at, both.jump_every(), both.jump_ahead()) == (400, 100, 200, 100, 100.0)
