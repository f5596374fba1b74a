"""Helpers llama-cpp-python exports from `llama_cpp._utils`: stdout/stderr silencing, singletons."""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional


class suppress_stdout_stderr:  # noqa: N801 (llama-cpp-python's name)
    """Context manager sending file descriptors 1 and 2 (and sys.stdout/err) to /dev/null.

    `disable=True` (the default, as upstream) makes it a no-op."""

    def __init__(self, disable: bool = True) -> None:
        self.disable = disable
        self._saved: Optional[Dict[str, Any]] = None

    def __enter__(self) -> suppress_stdout_stderr:
        if self.disable:
            return self
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = open(os.devnull, "w")  # noqa: SIM115 (closed in __exit__)
        self._saved = {"fd1": os.dup(1), "fd2": os.dup(2), "stdout": sys.stdout,
                       "stderr": sys.stderr, "devnull": devnull}
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        sys.stdout = sys.stderr = devnull
        return self

    def __exit__(self, *exc: Any) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        sys.stdout, sys.stderr = saved["stdout"], saved["stderr"]
        os.dup2(saved["fd1"], 1)
        os.dup2(saved["fd2"], 2)
        os.close(saved["fd1"])
        os.close(saved["fd2"])
        saved["devnull"].close()


class MetaSingleton(type):
    """Metaclass: one instance per class."""

    _instances: Dict[type, Any] = {}

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls not in cls._instances:
            cls._instances[cls] = super().__call__(*args, **kwargs)
        return cls._instances[cls]


class Singleton(metaclass=MetaSingleton):
    """Base class whose subclasses have one instance each."""

    def __init__(self) -> None:
        super().__init__()
