"""OctMNIST: fetching (download, a user's file, or the synthetic stand-in), validation of the
raw file, and the report's preparation protocol (the prepared file's format and loader are in
hw1.splits).

The raw file follows the MedMNIST layout: ``{train,val,test}_images`` uint8 (N, 28, 28) and
``{train,val,test}_labels`` integer (N, 1) with classes 0..3 (CNV, DME, DRUSEN, NORMAL).
"""
from __future__ import annotations

import hashlib
import http.client
import math
import shutil
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hw1.outputs import atomic_path, file_md5, save_npz
from hw1.params import ParamsError, Rule, Rules, number, one_of, validate_section
from hw1.splits import CLASSES, N_CLASSES, SPLITS, DataError, Splits, save_prepared

KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
REAL_SIZES = {"train": 97477, "val": 10832, "test": 1000}
# Class mix of OctMNIST's training split (CNV, DME, DRUSEN, NORMAL), and of its test split.
TRAIN_MIX = (0.3445, 0.1058, 0.0790, 0.4707)
# The report's test subset: the first images of each class in file order, class mix like train.
REPORT_TEST_COUNTS = (182, 55, 42, 250)
OFFLINE_HINT = "To run offline on the synthetic stand-in: dvc exp run -S data.source=synthetic"


SOURCES = ("medmnist", "file", "synthetic")
# The `data` section of params.yaml.
DATA_RULES: Rules = {
    "source": one_of(*SOURCES),
    "path": Rule(lambda v: v is None or (isinstance(v, str) and v.strip() != ""),
                 "null or the path of a MedMNIST-layout .npz"),
    "synthetic": {"scale": number(0, 1, above=True)},
}


def validate_data(cfg: Any) -> dict:
    """Check params.yaml's ``data`` section against DATA_RULES."""
    if isinstance(cfg, dict) and "test_distribution" in cfg:
        raise ParamsError(
            "data.test_distribution is not a params key: every run scores both test sets, the "
            "report's 529-image subset (test_acc, test_auc) and the official 1,000-image split "
            "(official_acc, official_auc); delete data.test_distribution from params.yaml")
    return validate_section(cfg, "data", DATA_RULES)


# ----------------------------------------------------------------------------------- fetching

def medmnist_source() -> tuple[str, str]:
    """URL and MD5 of the 28x28 OctMNIST file, as the medmnist package publishes them in its
    ``medmnist/info.py``, which is loaded alone: the package itself imports its dataset classes
    and torch with them, seconds of every `fetch` and `prepare` (and never torchvision here)."""
    import importlib.util

    package = importlib.util.find_spec("medmnist")
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("medmnist is not installed: pip install -r requirements.txt")
    path = Path(next(iter(package.submodule_search_locations))) / "info.py"
    spec = importlib.util.spec_from_file_location("medmnist_info", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    info = module.INFO["octmnist"]
    return info["url"], info["MD5"]


def _fetch_failure(reason: str, url: str, md5: str, out: Path) -> DataError:
    return DataError(
        f"Could not fetch OctMNIST: {reason}\n"
        f"  URL:          {url}\n"
        f"  expected MD5: {md5}\n"
        f"  To install it by hand, download that URL and place the file at {out}\n"
        f"  (a file there with this MD5 is used as it is, without downloading).\n"
        f"  {OFFLINE_HINT}")


def _download_once(url: str, md5: str, tmp: Path, timeout: float) -> None:
    """Stream ``url`` into ``tmp``, checking length and MD5; raise on any fault."""
    digest = hashlib.md5()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with open(tmp, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True,
                                         desc="octmnist.npz", mininterval=1.0) as bar:
            while True:
                block = resp.read(1 << 16)
                if not block:
                    break
                fh.write(block)
                digest.update(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)
    got = digest.hexdigest()
    if got != md5:
        raise DataError(f"MD5 mismatch: downloaded {received} bytes with MD5 {got}")


def download(url: str, md5: str, out: str | Path, *, timeout: float = 30.0, retries: int = 3,
             backoff: float = 1.0, log: Callable[[str], None] = print) -> str:
    """Put the file at ``url`` with MD5 ``md5`` at ``out``; return "kept" or "downloaded".

    A file already at ``out`` with the right MD5 is kept as it is (users behind firewalls place
    it by hand). Transient faults (connection, timeout, truncated transfer, HTTP 5xx) are retried
    up to ``retries`` times; HTTP 4xx and MD5 mismatches are not. The file appears at ``out``
    only complete and verified: every failure leaves no temporary file behind.
    """
    out = Path(out)
    if out.exists():
        have = file_md5(out)
        if have == md5:
            log(f"{out} is already there with the expected MD5 {md5}; not downloading.")
            return "kept"
        log(f"{out} exists but its MD5 is {have}, not {md5}: it is not the OctMNIST file, "
            f"downloading over it.")
    last = "no attempt made"
    for attempt in range(1, retries + 1):
        try:
            with atomic_path(out) as tmp:
                _download_once(url, md5, tmp, timeout)
            return "downloaded"
        except urllib.error.HTTPError as err:
            last = f"HTTP error {err.code} {err.reason}"
            if err.code < 500:
                break
        except DataError as err:
            last = str(err)
            break
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            if isinstance(err, http.client.IncompleteRead):
                last = f"transfer cut short ({err.expected} bytes missing)"
            else:
                last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
        if attempt < retries:
            log(f"attempt {attempt}/{retries} failed ({last}); retrying")
            time.sleep(backoff * attempt)
    raise _fetch_failure(last, url, md5, out)


def copy_user_file(src: str | Path | None, out: str | Path) -> None:
    """Validate a user's own MedMNIST-layout .npz (``data.path``) and copy it to ``out``."""
    if not src:
        raise DataError("data.source is 'file' but data.path is not set: set it to your .npz, "
                        "e.g. dvc exp run -S data.path=/path/to/octmnist.npz")
    src = Path(src)
    if not src.is_file():
        raise DataError(f"data.path {src} does not exist or is not a file")
    try:
        validate_raw(src)
    except DataError as err:
        raise DataError(f"{err}\n  (data.path names this file: point it at a MedMNIST-layout "
                        f".npz, e.g. dvc exp run -S data.path=/path/to/octmnist.npz)") from err
    if src.resolve() == Path(out).resolve():
        return
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)


# ------------------------------------------------------------------------------------ reading

EXPECTED_NPZ = (f"expected a MedMNIST-layout .npz holding {', '.join(KEYS)} "
                f"(uint8 images (N, 28, 28), integer labels (N, 1))")


def _what_it_is(path: Path, err: Exception) -> str:
    """What a file that is not a zip archive looks like, for the error message."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not head:
        return "it is empty (0 bytes)"
    size = f"{path.stat().st_size:,} bytes"
    if head.startswith(b"\x93NUMPY"):
        return f"it is a single .npy array ({size}), not an .npz archive of named arrays"
    if head.startswith(b"PK"):
        return f"it is a damaged or truncated zip archive ({size}; {err})"
    try:
        text = head.decode("utf-8").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        text = ""
    if text and text.isprintable():
        return f"it is text ({size}), starting {text[:40]!r}"
    return f"it is not a zip archive ({size}, starting with bytes {head[:8]!r})"


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The six MedMNIST-layout arrays of ``path``, read without pickle; DataError if unreadable.

    np.load trusts each .npy header: a header claiming a huge shape makes it allocate that much
    (hundreds of GiB) before finding the data missing. Here each member's header is checked
    against the member's size in the zip directory first, so nothing is allocated that the file
    does not hold.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except OSError as err:
        raise DataError(f"{path} cannot be read: {err.strerror or err}") from err
    except (zipfile.BadZipFile, EOFError, ValueError) as err:
        raise DataError(f"{path} is not a readable .npz file: {_what_it_is(path, err)}; "
                        f"{EXPECTED_NPZ}") from err
    with archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        missing = [k for k in KEYS if k not in members]
        if missing:
            raise DataError(f"{path} lacks key(s) {', '.join(missing)}; a MedMNIST-layout file "
                            f"has {', '.join(KEYS)} (found: {', '.join(members) or 'none'})")
        return {key: _read_member(archive, members[key], f"{path}: key {key}") for key in KEYS}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    fmt = np.lib.format
    try:
        with archive.open(info) as fh:
            version = fmt.read_magic(fh)
            if version not in ((1, 0), (2, 0)):  # 3.0 is only for non-latin-1 field names
                raise DataError(f"{where}: {info.filename} is in .npy format version "
                                f"{version[0]}.{version[1]}; expected 1.0 or 2.0, as numpy.savez "
                                f"writes for numeric arrays")
            read_header = fmt.read_array_header_1_0 if version == (1, 0) \
                else fmt.read_array_header_2_0
            shape, fortran_order, dtype = read_header(fh)
            if dtype.hasobject:  # loading it would need pickle, which we never allow
                raise DataError(f"{where} holds Python objects (pickled data); "
                                f"expected a plain numeric array")
            claimed = math.prod(shape) * dtype.itemsize
            stored = info.file_size - fh.tell()
            if claimed != stored or any(n < 0 for n in shape):
                raise DataError(
                    f"{where}: the header of {info.filename} claims a {dtype} array of shape "
                    f"{shape} ({claimed:,} bytes) but the member holds {stored:,} bytes of data; "
                    f"the file is damaged or was not written by numpy.savez")
            flat = np.empty(math.prod(shape), dtype)
            view, got = memoryview(flat.view(np.uint8)), 0
            # in 1 MiB pieces: one readinto would hold a second, temporary copy of the member
            while got < claimed and (piece := fh.readinto(view[got:got + (1 << 20)])):
                got += piece
            # reading past the end is what makes zipfile compare the CRC
            if got != claimed or fh.read(1):
                raise DataError(f"{where}: {info.filename} holds {got:,} bytes of data where "
                                f"the zip directory promised {stored:,}; the file is damaged")
    except ValueError as err:  # numpy's header parser
        raise DataError(f"{where}: {info.filename} is not a .npy array ({err}); "
                        f"{EXPECTED_NPZ}") from err
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise DataError(f"{where}: {info.filename} is damaged ({err}); the file was cut short "
                        f"or corrupted in transfer or on disk") from err
    return flat.reshape(shape, order="F" if fortran_order else "C")


# --------------------------------------------------------------------------------- validation

def load_raw(path: str | Path) -> dict[str, np.ndarray]:
    """Load and validate a MedMNIST-layout file; labels come back flat int64."""
    arrays = validate_raw(path)
    return {k: (v.reshape(-1).astype(np.int64) if k.endswith("labels") else v)
            for k, v in arrays.items()}


def validate_raw(path: str | Path) -> dict[str, np.ndarray]:
    """Check the six keys, dtypes, shapes and label range; raise DataError naming the problem."""
    path = Path(path)
    arrays = read_npz(path)
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        where = f"{path}: key {split}_images"
        if images.dtype != np.uint8:
            raise DataError(f"{where} has dtype {images.dtype}; expected uint8 pixels 0..255")
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{where} has shape {images.shape}; expected (N, 28, 28)")
        if images.shape[0] == 0:
            raise DataError(f"{where} is empty; every split needs at least one image")
        where = f"{path}: key {split}_labels"
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{where} has dtype {labels.dtype}; expected integer class ids")
        if labels.shape not in ((images.shape[0], 1), (images.shape[0],)):
            raise DataError(f"{where} has shape {labels.shape}; expected ({images.shape[0]}, 1) "
                            f"to match {split}_images")
        if labels.min() < 0 or labels.max() >= N_CLASSES:
            raise DataError(f"{where} has labels {labels.min()}..{labels.max()}; expected "
                            f"0..{N_CLASSES - 1}")
    return arrays


# ---------------------------------------------------------------------------------- synthetic

def _blob(rng: np.random.Generator, grid: np.ndarray) -> np.ndarray:
    """A smooth random pattern: a few signed Gaussian bumps on the 28x28 grid, unit max."""
    pattern = np.zeros((28, 28))
    for _ in range(3):
        cy, cx = rng.uniform(4, 24, size=2)
        width = rng.uniform(2.5, 5.0)
        pattern += rng.choice([-1.0, 1.0]) * np.exp(
            -((grid[0] - cy) ** 2 + (grid[1] - cx) ** 2) / (2 * width ** 2))
    return pattern / np.abs(pattern).max()


def synthetic_octmnist(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    """A seeded OctMNIST-shaped stand-in. Not OctMNIST: never report its numbers as such.

    Train and validation have the real sizes times ``scale`` and the real training class mix;
    the test split keeps OctMNIST's 1,000 balanced images at every scale (it is small, and the
    report's test subset needs 182 CNV and 250 NORMAL images).

    Structure: three hidden signs s1, s2, s3 = +-1 each weight a smooth pattern in the image.
    The class is (s1*s2, s2*s3) read as two bits, a parity a linear model cannot express; only
    a faint class template is linearly visible. So logistic regression scores clearly below a
    one-hidden-layer network, as on the real data.
    """
    rng = np.random.default_rng(seed)
    grid = np.mgrid[0:28, 0:28].astype(np.float64)
    hidden = np.stack([_blob(rng, grid) for _ in range(3)])          # (3, 28, 28)
    templates = np.stack([_blob(rng, grid) for _ in range(N_CLASSES)])
    background = 90 + 30 * np.exp(-((grid[0] - 14) ** 2) / 60)     # a bright retinal band

    sizes = synthetic_sizes(scale)
    out: dict[str, np.ndarray] = {}
    for split in SPLITS:
        n = sizes[split]
        if split == "test":
            labels = np.repeat(np.arange(N_CLASSES), n // N_CLASSES)
            rng.shuffle(labels)
        else:
            labels = rng.choice(N_CLASSES, size=n, p=TRAIN_MIX)
        # Pick the hidden signs: bits (b1 xor b2, b2 xor b3) = class; b1 free.
        b1 = rng.integers(0, 2, size=n)
        b2 = b1 ^ (labels >> 1)
        b3 = b2 ^ (labels & 1)
        signs = 1.0 - 2.0 * np.stack([b1, b2, b3], axis=1)            # (n, 3) in {+1, -1}
        strength = rng.uniform(8, 30, size=(n, 3))
        images = background + np.einsum("nk,khw->nhw", signs * strength, hidden)
        images += 3.5 * templates[labels]
        images += rng.normal(0, 40, size=images.shape)
        out[f"{split}_images"] = np.clip(np.rint(images), 0, 255).astype(np.uint8)
        out[f"{split}_labels"] = labels.astype(np.uint8).reshape(-1, 1)
    return out


def synthetic_sizes(scale: float) -> dict[str, int]:
    """The stand-in's split sizes at ``scale``."""
    return {"train": max(N_CLASSES, round(REAL_SIZES["train"] * scale)),
            "val": max(N_CLASSES, round(REAL_SIZES["val"] * scale)),
            "test": REAL_SIZES["test"]}


def prepared_sizes(data: Mapping[str, Any]) -> dict[str, int]:
    """The prepared splits' sizes for a validated data section (a user's own file is taken to
    have OctMNIST's sizes)."""
    if data["source"] == "synthetic":
        return synthetic_sizes(data["synthetic"]["scale"])
    return dict(REAL_SIZES)


def write_synthetic(out: str | Path, seed: int, scale: float) -> None:
    save_npz(out, **synthetic_octmnist(seed, scale))


# -------------------------------------------------------------------------------- preparation

def report_test_shortfall(labels: np.ndarray, counts=REPORT_TEST_COUNTS) -> str | None:
    """Why the test split cannot supply the report's subset (too few images of a class), or
    None when it can."""
    have = np.bincount(np.asarray(labels).reshape(-1), minlength=N_CLASSES)
    short = [f"{have[c]} {CLASSES[c]}" for c, count in enumerate(counts) if have[c] < count]
    if not short:
        return None
    wanted = ", ".join(f"{count} {CLASSES[c]}" for c, count in enumerate(counts))
    return (f"the test split has only {', '.join(short)} images; the report's test subset takes "
            f"the first {wanted}")


def report_test_subset(labels: np.ndarray, counts=REPORT_TEST_COUNTS) -> np.ndarray:
    """Indices of the first ``counts[c]`` test images of each class c, in file order."""
    labels = np.asarray(labels).reshape(-1)
    short = report_test_shortfall(labels, counts)
    if short:
        raise DataError(short)
    picked = [np.flatnonzero(labels == cls)[:count] for cls, count in enumerate(counts)]
    return np.sort(np.concatenate(picked))


def features(images: np.ndarray) -> np.ndarray:
    """The report's protocol: pixels / 256 (the course loader's constant), flattened to 784."""
    return (images.reshape(len(images), -1).astype(np.float32) / np.float32(256.0))


def prepare(raw_path: str | Path, out: str | Path, source: str) -> dict:
    """Write the prepared splits to ``out`` and return the data summary for metrics/data.json.

    The test split is kept whole (the official split); the report's test subset is recorded
    as indices into it, or, where the file has too few test images of a class, as missing with
    the reason (the runs then score the official split only).
    """
    try:
        raw = load_raw(raw_path)
    except DataError as err:
        raise DataError(f"{err}\n  (the fetch stage writes {raw_path}: run `dvc repro -f fetch` "
                        f"to write it again; if it came from DVC's cache, run "
                        f"`python -m scripts.verify --remove-corrupt` first)") from err
    md5 = file_md5(raw_path)
    missing = report_test_shortfall(raw["test_labels"])
    keep = np.zeros(0, np.int64) if missing else report_test_subset(raw["test_labels"])
    official = source == "medmnist" or md5 == _official_md5()

    def counts(labels: np.ndarray) -> dict[str, int]:
        return {CLASSES[c]: int(n) for c, n in
                enumerate(np.bincount(labels, minlength=N_CLASSES))}

    summary = {
        "source": source,
        "dataset": "OctMNIST" if official else f"{source} (not OctMNIST)",
        "md5": md5,
        "sizes": {s: int(len(raw[f"{s}_labels"])) for s in SPLITS},
        "class_counts": {s: counts(raw[f"{s}_labels"]) for s in SPLITS},
        "report_test": {"size": int(len(keep)),
                        "class_counts": None if missing else counts(raw["test_labels"][keep]),
                        "missing": missing},
    }
    save_prepared(out, Splits(
        features(raw["train_images"]), raw["train_labels"],
        features(raw["val_images"]), raw["val_labels"],
        features(raw["test_images"]), raw["test_labels"],
        dataset=summary["dataset"], md5=md5, report_test=keep, report_test_missing=missing))
    return summary


def _official_md5() -> str | None:
    try:
        return medmnist_source()[1]
    except Exception:  # medmnist missing or its INFO changed: label by the params source only
        return None
