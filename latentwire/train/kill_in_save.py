"""`python -m latentwire.train.kill_in_save <latentwire CLI args>`: run the CLI and SIGKILL itself right
after the DIE_AT_WRITE-th safetensors file of a checkpoint is written (mid-checkpoint: the model written,
the optimizer state not yet). A fault injector for the kill/resume test and bench/reliability.py; importing
it changes nothing, running it as __main__ patches latentwire.train.checkpoint.save_file."""
from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> int:
    """Run the latentwire CLI on `argv` with checkpoint writes counted; the process kills itself (SIGKILL)
    after the DIE_AT_WRITE-th one. Returns the CLI's exit code when that write never comes."""
    import latentwire.train.checkpoint as checkpoint
    from latentwire.cli import main as cli_main

    die_at, calls, real_save = int(os.environ["DIE_AT_WRITE"]), [0], checkpoint.save_file

    def save_then_die(tensors, path, *args, **kwargs):
        calls[0] += 1
        real_save(tensors, path, *args, **kwargs)
        if calls[0] == die_at:
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.save_file = save_then_die
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
