"""The "llama-cpp-python" logger and `set_verbose`, as `llama_cpp._logger` provides them."""

from __future__ import annotations

import logging

logger = logging.getLogger("llama-cpp-python")


def set_verbose(verbose: bool) -> None:
    """DEBUG level when verbose, ERROR otherwise."""
    logger.setLevel(logging.DEBUG if verbose else logging.ERROR)
