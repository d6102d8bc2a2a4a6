"""The prepared splits: the one file format every training stage reads, its loader, and the
error for bad or missing data.

Kept apart from hw1.data (fetching and preparing) so that changes to the download code do not
make DVC re-run the training stages, which depend on this module only.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw1.errors import UserError
from hw1.outputs import save_npz

PREPARED = Path("data/prepared/octmnist.npz")
SPLITS = ("train", "val", "test")
CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")  # OctMNIST's label ids 0..3
N_CLASSES = len(CLASSES)
_META = ("dataset", "md5", "report_test_missing")
VERIFY = "python -m scripts.verify --remove-corrupt"


class DataError(UserError):
    """Bad, missing or unobtainable data; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Splits:
    """The prepared data as every training stage sees it.

    The test split is the whole official one (``x_test``, ``y_test``: OctMNIST's 1,000 images);
    ``report_test`` indexes the report's test subset in it (529 images), empty when the data
    cannot supply it, and then ``report_test_missing`` says why (None otherwise).
    """
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    dataset: str             # "OctMNIST" or e.g. "synthetic (not OctMNIST)"
    md5: str                 # of the raw file
    report_test: np.ndarray  # int64 indices into the test split, in file order
    report_test_missing: str | None = None


def save_prepared(path: str | Path, splits: Splits) -> None:
    arrays = {f"{kind}_{s}": getattr(splits, f"{kind}_{s}") for s in SPLITS for kind in "xy"}
    meta = {k: np.array(getattr(splits, k) or "") for k in _META}
    save_npz(path, **arrays, report_test=np.asarray(splits.report_test, np.int64), **meta)


def load_prepared(path: str | Path = PREPARED, *,
                  bias: bool = False) -> Splits:
    """Load the prepared splits; ``bias=True`` appends a constant 1 feature (785 inputs)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro prepare` first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            xs = {s: npz[f"x_{s}"] for s in SPLITS}
            ys = {s: npz[f"y_{s}"].astype(np.int64) for s in SPLITS}
            meta = {k: str(npz[k]) or None for k in _META}
            report_test = npz["report_test"].astype(np.int64)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError) as err:
        raise DataError(
            f"{path} is damaged or not the prepare stage's file ({type(err).__name__}: {err}); "
            f"run `{VERIFY}` (it finds and removes corrupt copies in DVC's cache and the "
            f"workspace copies of them), then `dvc repro`; or `dvc repro -f prepare` to write "
            f"it again") from None
    if bias:
        xs = {s: np.hstack([x, np.ones((len(x), 1), dtype=x.dtype)]) for s, x in xs.items()}
    return Splits(xs["train"], ys["train"], xs["val"], ys["val"], xs["test"], ys["test"],
                  report_test=report_test, **meta)
