"""The errors a user can cause; the CLI prints each as one line."""
from latentwire.config import ConfigError
from latentwire.data.loaders import DataError
from latentwire.llm.offline import OfflineModelError
from latentwire.prompt import AlignmentError, PromptError

USER_ERRORS = (ConfigError, DataError, OfflineModelError, AlignmentError, PromptError, ValueError, OSError)
