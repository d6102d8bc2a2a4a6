"""DVC stage `fetch`: put the raw OctMNIST file at data/raw/octmnist.npz, per `data.source`."""
from __future__ import annotations

from pathlib import Path

from hw1.data import (
    copy_user_file,
    download,
    medmnist_source,
    validate_data,
    validate_raw,
    write_synthetic,
)
from hw1.errors import run_stage
from hw1.params import load_params, section, validate_seed

OUT = Path("data/raw/octmnist.npz")


def main() -> None:
    params = load_params()
    data = validate_data(section(params, "data"))
    source = data["source"]
    if source == "medmnist":
        url, md5 = medmnist_source()
        download(url, md5, OUT)
    elif source == "file":
        copy_user_file(data.get("path"), OUT)
    elif source == "synthetic":
        scale = data["synthetic"]["scale"]
        write_synthetic(OUT, seed=validate_seed(params), scale=scale)
        print(f"Wrote the synthetic stand-in (scale {scale}) to {OUT}: NOT OctMNIST.")
    validate_raw(OUT)


if __name__ == "__main__":
    run_stage(main, "fetch")
