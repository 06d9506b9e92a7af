"""NExt in the loop of your own TRL script: add `NExtCallback` to any GRPOTrainer with a LoRA model.

After the checkpoint at step 100 it fits NExt on the checkpoints so far (in args.output_dir), writes
Ŵ = W_T + α·ΔŴ into the live adapter (best rank-r approximation), clears Adam's moments and lets
training continue. Here on the embedded tiny model and addition task, so it runs on a CPU.

    python examples/callback_in_your_trl_script.py
"""

from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from nextx.train import NExtCallback
from nextx.train.tasks import get_task
from nextx.train.tiny_model import tiny_model_path

task = get_task("addition")
model_dir = tiny_model_path("addition")  # built once (SFT warm-up), cached
examples = task.train_examples(200 * 16, seed=0)
dataset = Dataset.from_dict({"prompt": [e.prompt for e in examples], "answer": [e.answer for e in examples]})


def exact_match(completions, answer, **_):
    return [task.score(c, a) for c, a in zip(completions, answer, strict=True)]


args = GRPOConfig(
    output_dir="runs/my-grpo", max_steps=200, save_steps=25, save_only_model=True, learning_rate=3e-4,
    lr_scheduler_type="constant", per_device_train_batch_size=128, num_generations=8, max_completion_length=4,
    use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
)
trainer = GRPOTrainer(
    model=AutoModelForCausalLM.from_pretrained(model_dir),
    reward_funcs=exact_match,
    args=args,
    train_dataset=dataset,
    processing_class=AutoTokenizer.from_pretrained(model_dir),
    peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
    callbacks=[NExtCallback(at=100, method="next", ahead=50, horizon=3, hparams={"lr": 3e-4}, log=print)],
)
trainer.train()
