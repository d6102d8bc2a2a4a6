"""Verify before trust: re-hash what DVC's cache and the workspace hold.

DVC trusts its cache. An object whose bytes changed on disk with its modification time kept (bit
rot, a restore tool) passes `dvc status`, is checked out, replaces the fresh output of a forced
`dvc repro` and is pushed. DVC 3.67 has no command that re-hashes the cache (`dvc status`,
`dvc data status` and `dvc checkout` go by its records of file times and sizes; `remote.verify`
checks only downloads). This re-hashes:

- every object of the local cache against its own name, the MD5 of its bytes (a directory's
  ``.dir`` object, its JSON listing, too);
- every output of the pipeline (dvc.yaml's stages as dvc.lock records them) that the workspace
  holds: a file against its MD5, a directory file by file against its listing.

It prints one line per mismatch and exits 1 if there is any (0 if all match).
``--remove-corrupt`` deletes the corrupt cache objects, and a workspace copy that holds the same
bytes as a corrupt object, so that the next `dvc repro` recomputes them (a stage whose output
is not in the cache re-runs). Run it when no other `dvc` command runs in the workspace.

    python -m scripts.verify [--remove-corrupt]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hw1.outputs import file_md5

OBJECT = re.compile(r"[0-9a-f]{30}(\.dir)?")
REMOVE = "python -m scripts.verify --remove-corrupt"


@dataclass(frozen=True)
class Output:
    """One output dvc.lock records: its stage, path as dvc.yaml writes it, absolute path, MD5
    (``<md5>.dir`` for a directory) and whether DVC caches it."""
    stage: str
    name: str
    path: Path
    md5: str
    cached: bool


def pipeline_outputs(root: Path) -> tuple[Path, list[Output]]:
    """The local cache's directory of MD5 objects, and every output recorded in dvc.lock."""
    from dvc.repo import Repo  # only here: `--help` answers without loading DVC

    with Repo(str(root)) as repo:
        outs = [Output(stage.addressing, out.def_path, Path(out.fs_path), out.hash_info.value,
                       out.use_cache)
                for stage in repo.index.stages for out in stage.outs
                if out.hash_info and out.hash_info.name == "md5" and out.hash_info.value]
        return Path(repo.cache.local.path), outs


def object_path(cache: Path, md5: str) -> Path:
    return cache / md5[:2] / md5[2:]


def corrupt_objects(cache: Path) -> Iterator[tuple[Path, str]]:
    """(object, MD5 of its bytes) for every cache object whose bytes do not hash to its name."""
    for path in sorted(cache.glob("??/*")):
        if not OBJECT.fullmatch(path.name) or not path.is_file():
            continue
        got = file_md5(path)
        if got != path.parent.name + path.name.removesuffix(".dir"):
            yield path, got


def dir_listing(cache: Path, md5: str, corrupt: set[Path]) -> dict[str, str] | None:
    """A directory's files and MD5s from its sound ``.dir`` object, or None if there is none."""
    path = object_path(cache, md5)
    if path in corrupt or not path.is_file():
        return None
    return {entry["relpath"]: entry["md5"] for entry in json.loads(path.read_bytes())}


def dir_md5(path: Path) -> str:
    """DVC's hash of a directory: the MD5 of its listing as the ``.dir`` object holds it."""
    listing = [{"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()}
               for f in sorted(path.rglob("*")) if f.is_file()]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"


def workspace_mismatches(out: Output, cache: Path,
                         corrupt: set[Path]) -> Iterator[tuple[Path, str, str, str]]:
    """(file, its MD5, the MD5 recorded for it, where that is recorded) for each file of
    ``out`` in the workspace whose bytes differ from dvc.lock's record."""
    if out.md5.endswith(".dir"):
        if not out.path.is_dir():
            return
        listing = dir_listing(cache, out.md5, corrupt)
        if listing is None:  # no listing to compare file by file: the directory's own hash
            got = dir_md5(out.path)
            if got != out.md5:
                yield out.path, got, out.md5, "dvc.lock"
            return
        files = {f.relative_to(out.path).as_posix(): f
                 for f in sorted(out.path.rglob("*")) if f.is_file()}
        for rel in sorted(listing.keys() | files.keys()):
            got = file_md5(files[rel]) if rel in files else "none (missing)"
            if got != listing.get(rel):
                yield (out.path / rel, got, listing.get(rel, "none (not in the directory)"),
                       f"the listing of {out.name}")
    elif out.path.is_file():
        got = file_md5(out.path)
        if got != out.md5:
            yield out.path, got, out.md5, "dvc.lock"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.verify",
        description="Re-hash DVC's cache and the pipeline's outputs in the workspace.")
    parser.add_argument("--remove-corrupt", action="store_true",
                        help="delete corrupt cache objects and workspace copies of their bytes, "
                             "so that `dvc repro` recomputes them")
    args = parser.parse_args(argv)
    root = Path.cwd()
    cache, outs = pipeline_outputs(root)

    def shown(path: Path) -> str:
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)

    used_by: dict[str, list[str]] = {}
    for out in outs:
        used_by.setdefault(out.md5, []).append(f"{out.name} of {out.stage}")
    corrupt = dict(corrupt_objects(cache))  # object -> MD5 of the bytes it holds
    removals: list[Path] = []
    lines = []
    for path, got in corrupt.items():
        name = path.parent.name + path.name
        users = ", ".join(used_by.get(name, [])) or "no output of the pipeline"
        lines.append(f"cache {shown(path)}: its bytes have MD5 {got}, not its name ({users})")
        removals.append(path)
    corrupt_bytes = set(corrupt.values())
    for out in outs:
        for path, got, want, where in workspace_mismatches(out, cache, set(corrupt)):
            line = f"workspace {shown(path)}: MD5 {got}, {where} records {want} ({out.stage})"
            if got in corrupt_bytes:
                line += "; it holds a corrupt cache object's bytes"
                removals.append(path)
            elif out.cached and object_path(cache, want) not in corrupt \
                    and object_path(cache, want).is_file():
                line += f"; `rm {shown(path)} && dvc checkout {out.name}` restores it"
            else:
                line += f"; `dvc repro -f {out.stage}` writes it again"
            lines.append(line)
    print("\n".join(lines) if lines else
          f"verified: {len(outs)} outputs in dvc.lock and every object in {shown(cache)} match "
          f"their MD5s")
    if not lines:
        return 0
    if args.remove_corrupt:
        for path in removals:
            path.unlink(missing_ok=True)
            print(f"removed {shown(path)}")
        print(f"{len(lines)} mismatch(es); corrupt copies removed: run `dvc repro` to recompute "
              f"them")
    else:
        print(f"{len(lines)} mismatch(es): `{REMOVE}` removes the corrupt copies, then "
              f"`dvc repro` recomputes them")
    return 1


if __name__ == "__main__":
    sys.exit(main())
