"""`Llama.from_pretrained`'s file resolution: a local directory, or the Hugging Face hub.

A local directory `repo_id` is searched for `filename` (a glob) with no network access. A hub
repository id needs `huggingface_hub` (not a dependency of this project) and downloads as
llama-cpp-python does; nothing in this project calls it with a hub id.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any, List, Optional, Union


def _one_match(files: List[str], pattern: str, repo_id: str, listed: List[str]) -> str:
    found = [f for f in files if fnmatch.fnmatch(f, pattern)]
    if len(found) == 0:
        raise ValueError(f"No file found in {repo_id} that match {pattern}\n\n"
                         f"Available Files:\n{json.dumps(files)}")
    if len(found) > 1:
        raise ValueError(f"Multiple files found in {repo_id} matching {pattern}\n\n"
                         f"Available Files:\n{json.dumps(listed)}")
    return found[0]


def resolve_pretrained(
    repo_id: str,
    filename: Optional[str],
    additional_files: Optional[List[Any]] = None,
    local_dir: Optional[Union[str, os.PathLike[str]]] = None,
    cache_dir: Optional[Union[str, os.PathLike[str]]] = None,
) -> str:
    """The path of the model file `filename` matches in `repo_id` (ValueError: none or several)."""
    if os.path.isdir(repo_id):
        files = sorted(str(p.relative_to(repo_id)) for p in Path(repo_id).rglob("*") if p.is_file())
        return os.path.join(repo_id, _one_match(files, filename or "", repo_id, files))
    try:
        from huggingface_hub import HfFileSystem, hf_hub_download
        from huggingface_hub.utils import validate_repo_id
    except ImportError:
        raise ImportError(
            "Llama.from_pretrained requires the huggingface-hub package. "
            "You can install it with `pip install huggingface-hub`."
        ) from None
    validate_repo_id(repo_id)
    all_files = [f["name"] if isinstance(f, dict) else f for f in HfFileSystem().ls(repo_id, recursive=True)]
    file_list = [str(Path(f).relative_to(repo_id)) for f in all_files]
    local = None if local_dir is None else os.fspath(local_dir)
    cache = None if cache_dir is None else os.fspath(cache_dir)
    matching_file = _one_match(file_list, filename or "", repo_id, all_files)
    for extra in additional_files or []:
        extra_file = _one_match(file_list, extra, repo_id, all_files)
        hf_hub_download(repo_id=repo_id, filename=Path(extra_file).name,
                        subfolder=str(Path(extra_file).parent), local_dir=local, cache_dir=cache)
    return str(hf_hub_download(repo_id=repo_id, filename=Path(matching_file).name,
                               subfolder=str(Path(matching_file).parent), local_dir=local,
                               cache_dir=cache))
