"""Prompt caches (`llama_cpp.llama_cache`): token-prefix -> `LlamaState`.

`Llama.set_cache(LlamaRAMCache())`: before a completion, the state cached under the longest
prefix of the prompt is loaded if it covers more than what is already evaluated; after it, the
state is stored under prompt + completion. `LlamaDiskCache` pickles states into a directory
(one file per key, no diskcache dependency; like llama-cpp-python's it removes an entry on a
hit). Pickles: only point it at a directory you trust.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from bitnet.llama_compat.llama_state import LlamaState
from bitnet.llama_compat.llama_types import *  # noqa: F403 (llama_cpp.llama_cache re-exports the types)


def longest_token_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class BaseLlamaCache(ABC):
    """Prompt-prefix -> LlamaState cache holding at most `capacity_bytes`."""

    def __init__(self, capacity_bytes: int = (2 << 30)) -> None:
        self.capacity_bytes = capacity_bytes

    @property
    @abstractmethod
    def cache_size(self) -> int:
        raise NotImplementedError

    def _find_longest_prefix_key(self, key: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:  # noqa: B027
        """The cached key sharing the longest prefix with `key` (subclasses; None here)."""
        return None

    @abstractmethod
    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        raise NotImplementedError

    @abstractmethod
    def __contains__(self, key: Sequence[int]) -> bool:
        raise NotImplementedError

    @abstractmethod
    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        raise NotImplementedError


def _best_prefix(keys: Sequence[Tuple[int, ...]], key: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
    """The key sharing the longest (non-empty) prefix with `key`; the first of equals."""
    best_len, best = 0, None
    for k in keys:
        n = longest_token_prefix(k, key)
        if n > best_len:
            best_len, best = n, k
    return best


class LlamaRAMCache(BaseLlamaCache):
    """States in memory, least recently used evicted past `capacity_bytes`."""

    def __init__(self, capacity_bytes: int = (2 << 30)) -> None:
        super().__init__(capacity_bytes)
        self.capacity_bytes = capacity_bytes
        self.cache_state: OrderedDict[Tuple[int, ...], LlamaState] = OrderedDict()

    @property
    def cache_size(self) -> int:
        return sum([state.llama_state_size for state in self.cache_state.values()])

    def _find_longest_prefix_key(self, key: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
        return _best_prefix(list(self.cache_state.keys()), key)

    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        _key = self._find_longest_prefix_key(tuple(key))
        if _key is None:
            raise KeyError("Key not found")
        value = self.cache_state[_key]
        self.cache_state.move_to_end(_key)
        return value

    def __contains__(self, key: Sequence[int]) -> bool:
        return self._find_longest_prefix_key(tuple(key)) is not None

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        key = tuple(key)
        if key in self.cache_state:
            del self.cache_state[key]
        self.cache_state[key] = value
        while self.cache_size > self.capacity_bytes and len(self.cache_state) > 0:
            self.cache_state.popitem(last=False)


LlamaCache = LlamaRAMCache  # llama-cpp-python's backwards-compatible alias


class LlamaDiskCache(BaseLlamaCache):
    """States pickled into `cache_dir`, oldest files evicted past `capacity_bytes`."""

    def __init__(self, cache_dir: str = ".cache/llama_cache", capacity_bytes: int = (2 << 30)) -> None:
        super().__init__(capacity_bytes)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def _files(self) -> List[Path]:
        return sorted(self.cache_dir.glob("*.state"), key=lambda p: p.stat().st_mtime)

    @staticmethod
    def _load(path: Path) -> Tuple[Tuple[int, ...], LlamaState]:
        with open(path, "rb") as f:
            key, state = pickle.load(f)
        return tuple(key), state

    def _path(self, key: Tuple[int, ...]) -> Path:
        return self.cache_dir / (hashlib.sha256(repr(key).encode()).hexdigest() + ".state")

    @property
    def cache_size(self) -> int:
        return sum(p.stat().st_size for p in self._files())

    def _find_longest_prefix_key(self, key: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
        return _best_prefix([self._load(p)[0] for p in self._files()], key)

    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        _key = self._find_longest_prefix_key(tuple(key))
        if _key is None:
            raise KeyError("Key not found")
        path = self._path(_key)
        _, value = self._load(path)
        path.unlink()
        return value

    def __contains__(self, key: Sequence[int]) -> bool:
        return self._find_longest_prefix_key(tuple(key)) is not None

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        key = tuple(key)
        path = self._path(key)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump((key, value), f)
        os.replace(tmp, path)
        files = self._files()
        while self.cache_size > self.capacity_bytes and files:
            files.pop(0).unlink()
