"""The `nextx` console script. Start-up imports (torch, transformers) take a second or more; a
Ctrl-C (or TERM/HUP) during them exits quietly with 130 instead of a KeyboardInterrupt traceback.
Once the command group is loaded, `nextx.cli.main` handles interrupts (outputs in progress removed)."""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_during_start_up(signum, _frame) -> None:
    sys.stderr.write("Interrupted.\n")
    sys.stderr.flush()
    os._exit(130)


def main() -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # installed before any heavy import
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupted_during_start_up)
    from nextx.cli.main import main as run  # the heavy imports

    signal.signal(signal.SIGINT, signal.default_int_handler)
    run()


if __name__ == "__main__":
    main()
