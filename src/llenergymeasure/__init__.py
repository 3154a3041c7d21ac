"""llenergymeasure: measure what LLM inference really costs.

Importing the package is cheap on purpose: torch, transformers and pynvml are imported only by
the code paths that use them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llenergymeasure")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# A library stays quiet unless its application asks: the CLI enables our logger.
from loguru import logger as _logger

_logger.disable("llenergymeasure")

__all__ = ["__version__"]
