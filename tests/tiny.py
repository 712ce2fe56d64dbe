"""Re-export of the tiny random receivers, which live in the package: latentwire/llm/tiny.py."""
from latentwire.llm.tiny import *  # noqa: F401,F403
