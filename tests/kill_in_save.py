"""`python tests/kill_in_save.py <latentwire CLI args>`: run the CLI, SIGKILL itself right after the
DIE_AT_WRITE-th safetensors file of a checkpoint is written (mid-checkpoint: model written, the
optimizer state not yet). Used by the kill/resume test and bench/reliability.py."""
import os
import signal
import sys

import latentwire.train.checkpoint as checkpoint
from latentwire.cli import main

calls, real_save = [0], checkpoint.save_file


def save_then_die(tensors, path, *args, **kwargs):
    calls[0] += 1
    real_save(tensors, path, *args, **kwargs)
    if calls[0] == int(os.environ["DIE_AT_WRITE"]):
        os.kill(os.getpid(), signal.SIGKILL)


checkpoint.save_file = save_then_die
sys.exit(main(sys.argv[1:]))
