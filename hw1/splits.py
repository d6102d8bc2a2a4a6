"""The prepared splits: the one file format every training stage reads, and its loader.

Kept apart from hw1.data (fetching and preparing) so that changes to the download code do not
make DVC re-run the training stages, which depend on this module only.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw1.outputs import save_npz
from hw1.params import ParamsError

PREPARED = Path("data/prepared/octmnist.npz")
SPLITS = ("train", "val", "test")
CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")  # OctMNIST's label ids 0..3
N_CLASSES = len(CLASSES)
_META = ("dataset", "md5", "test_distribution")
VERIFY = "python -m scripts.verify --remove-corrupt"


class PreparedDataError(ParamsError):
    """The prepared file is damaged or is not what `prepare` writes; the message names it and
    what to run. A ParamsError, so every stage that loads it reports it in one line."""


@dataclass(frozen=True)
class Splits:
    """The prepared data as every training stage sees it."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    dataset: str             # "OctMNIST" or e.g. "synthetic (not OctMNIST)"
    md5: str                 # of the raw file
    test_distribution: str


def save_prepared(path: str | Path, splits: Splits) -> None:
    arrays = {f"{kind}_{s}": getattr(splits, f"{kind}_{s}") for s in SPLITS for kind in "xy"}
    save_npz(path, **arrays, **{k: np.array(getattr(splits, k)) for k in _META})


def load_prepared(path: str | Path = PREPARED, *,
                  bias: bool = False) -> Splits:
    """Load the prepared splits; ``bias=True`` appends a constant 1 feature (785 inputs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `dvc repro prepare` first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            xs = {s: npz[f"x_{s}"] for s in SPLITS}
            ys = {s: npz[f"y_{s}"].astype(np.int64) for s in SPLITS}
            meta = {k: str(npz[k]) for k in _META}
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError) as err:
        raise PreparedDataError(
            f"{path} is damaged or not the prepare stage's file ({type(err).__name__}: {err}); "
            f"run `{VERIFY}` (it finds and removes corrupt copies in the workspace and in DVC's "
            f"cache), then `dvc repro`; or `dvc repro -f prepare` to write it again") from None
    if bias:
        xs = {s: np.hstack([x, np.ones((len(x), 1), dtype=x.dtype)]) for s, x in xs.items()}
    return Splits(xs["train"], ys["train"], xs["val"], ys["val"], xs["test"], ys["test"], **meta)
