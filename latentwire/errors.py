"""The errors a user can cause; the CLI prints each as one line."""
from latentwire.config import ConfigError
from latentwire.data.loaders import DataError
from latentwire.llm.offline import OfflineModelError
from latentwire.prompt import AlignmentError, PromptError
from latentwire.train.checkpoint import CheckpointError
from latentwire.train.trainer import TrainingError
from latentwire.wire import PacketError

USER_ERRORS = (ConfigError, DataError, OfflineModelError, AlignmentError, PromptError, CheckpointError,
               PacketError, TrainingError, ValueError, OSError)
