"""Built-in verifiable tasks, one file each; a new task is one file plus one TASKS line."""

from __future__ import annotations

from nextx.errors import NextxError
from nextx.train.tasks.addition import Addition
from nextx.train.tasks.base import Example, Task
from nextx.train.tasks.chain import Chain
from nextx.train.tasks.chat_arith import ChatArithmetic

TASKS: dict[str, type[Task]] = {"addition": Addition, "chain": Chain, "chat-arith": ChatArithmetic}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise NextxError(f"unknown task {name!r}", hint=f"Choose one of: {', '.join(TASKS)}.")
    return TASKS[name]()


__all__ = ["TASKS", "Example", "Task", "get_task"]
