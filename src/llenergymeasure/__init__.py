"""llenergymeasure: measure what LLM inference really costs.

Importing the package is cheap on purpose: torch, transformers, pynvml and even the logger are
imported only by the code paths that use them (see ``llenergymeasure.log``).
"""

__version__ = "0.1.0"
"""The one place the version is written (pyproject.toml reads it from here)."""

__all__ = ["__version__"]
