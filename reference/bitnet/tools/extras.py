"""Optional dependencies: which extra brings a module, and the one-line message when it is missing.

`pip install bitnet-compat` brings the runtime (numpy, regex, jinja2, cffi); the rest comes
with an extra: `server` (bitnet serve), `harness` (bitnet-compat: the conformance runner,
its oracles and reports), `test` (the test suite: harness + its own tools), `all`.
Both commands (`bitnet`, `bitnet-compat`) turn a missing one into one line and exit 2.
"""

from __future__ import annotations

import importlib.util
from typing import Dict, List, Optional, Sequence

EXIT_MISSING_EXTRA = 2

# top-level module -> the extra that installs it
EXTRA_OF_MODULE: Dict[str, str] = {
    "fastapi": "server", "uvicorn": "server", "sse_starlette": "server", "starlette": "server",
    "pydantic": "server", "anyio": "server", "prometheus_client": "server",
    "rich": "harness", "gguf": "harness", "hypothesis": "harness", "llama_cpp": "harness",
    "tiktoken": "harness", "pytest": "harness", "xdist": "harness",
    "jsonschema": "test", "yaml": "test", "openai": "test", "transformers": "test",
    "sentencepiece": "test", "safetensors": "test",
}


class MissingExtraError(ImportError):
    """A module of an extra is not installed; str() is the one line to show."""

    def __init__(self, module: str, extra: Optional[str] = None) -> None:
        self.module = module
        self.extra = extra or EXTRA_OF_MODULE.get(module.split(".")[0], "all")
        super().__init__(f"this needs the '{self.extra}' extra ({module} is not installed): "
                         f"pip install 'bitnet-compat[{self.extra}]'", name=module)


def missing_extra(exc: ImportError) -> Optional[MissingExtraError]:
    """The MissingExtraError an ImportError stands for, or None when it is not about a module
    of an extra (a bug, to be shown as it is)."""
    if isinstance(exc, MissingExtraError):
        return exc
    name = (exc.name or "").split(".")[0]
    return MissingExtraError(name) if name in EXTRA_OF_MODULE else None


def missing_modules(modules: Sequence[str]) -> List[str]:
    """Those of `modules` that cannot be imported (checked without importing them)."""
    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except ImportError:
            return True

    return [m for m in modules if absent(m)]
