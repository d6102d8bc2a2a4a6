"""Fetching, validation, the synthetic stand-in and the report's preparation protocol."""
from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_module

from hw1.data import (
    REAL_SIZES,
    REPORT_TEST_COUNTS,
    DataError,
    copy_user_file,
    download,
    features,
    prepare,
    report_test_shortfall,
    report_test_subset,
    synthetic_octmnist,
    validate_raw,
)
from hw1.splits import load_prepared

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several read blocks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        if self.path == "/octmnist.npz":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/dropped.npz":  # promises the whole file, sends a third, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _quiet(msg: str) -> None:
    pass


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.e2e
def test_download_writes_verified_file(server, tmp_path):
    out = tmp_path / "raw" / "octmnist.npz"
    assert download(f"{server}/octmnist.npz", PAYLOAD_MD5, out, log=_quiet) == "downloaded"
    assert out.read_bytes() == PAYLOAD
    assert _leftovers(out.parent) == ["octmnist.npz"]


@pytest.mark.e2e
@pytest.mark.parametrize("path, md5, reason", [
    ("/missing.npz", PAYLOAD_MD5, "HTTP error 404"),
    ("/octmnist.npz", "0" * 32, "MD5 mismatch"),
    ("/dropped.npz", PAYLOAD_MD5, "transfer cut short"),
])
def test_failed_download_leaves_nothing_and_says_how_to_recover(server, tmp_path, path, md5,
                                                                reason):
    out = tmp_path / "octmnist.npz"
    url = f"{server}{path}"
    with pytest.raises(DataError) as err:
        download(url, md5, out, retries=2, backoff=0, log=_quiet)
    message = str(err.value)
    assert reason in message
    assert url in message and md5 in message and str(out) in message
    assert "dvc exp run -S data.source=synthetic" in message
    assert _leftovers(tmp_path) == []


@pytest.mark.e2e
def test_transient_failures_are_retried_but_404_is_not(server, tmp_path):
    _Handler.hits.clear()
    for path in ("/dropped.npz", "/missing.npz"):
        with pytest.raises(DataError):
            download(f"{server}{path}", PAYLOAD_MD5, tmp_path / "x.npz", retries=3, backoff=0,
                     log=_quiet)
    assert _Handler.hits == {"/dropped.npz": 3, "/missing.npz": 1}


def test_unreachable_host_fails_with_message(tmp_path):
    out = tmp_path / "octmnist.npz"
    with pytest.raises(DataError, match="place the file at"):
        download("http://127.0.0.1:9/octmnist.npz", PAYLOAD_MD5, out, retries=1, log=_quiet)
    assert not out.exists()


@pytest.mark.e2e
def test_placed_file_with_right_md5_is_kept_without_download(server, tmp_path):
    _Handler.hits.clear()
    out = tmp_path / "octmnist.npz"
    out.write_bytes(PAYLOAD)
    assert download(f"{server}/octmnist.npz", PAYLOAD_MD5, out, log=_quiet) == "kept"
    assert _Handler.hits == {}


@pytest.mark.e2e
def test_placed_file_with_wrong_md5_is_rejected_and_replaced(server, tmp_path):
    out = tmp_path / "octmnist.npz"
    out.write_bytes(b"not the dataset")
    logs: list[str] = []
    assert download(f"{server}/octmnist.npz", PAYLOAD_MD5, out, log=logs.append) == "downloaded"
    assert out.read_bytes() == PAYLOAD
    assert "not the OctMNIST file" in logs[0]


# ------------------------------------------------------------------------------- validation

def _raw(n: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 4).astype(np.uint8).reshape(-1, 1)
    return arrays


def _save(path: Path, arrays: dict, allow_pickle: bool = False) -> Path:
    np.savez(path, allow_pickle=allow_pickle, **arrays)
    return path


@pytest.mark.parametrize("savez", [np.savez, np.savez_compressed])
def test_valid_file_passes_with_its_values(tmp_path, savez):
    raw = _raw()
    raw["train_images"] = np.asfortranarray(raw["train_images"])
    raw["val_labels"] = raw["val_labels"].astype(">i2")  # big-endian integers are still labels
    savez(tmp_path / "ok.npz", **raw)
    arrays = validate_raw(tmp_path / "ok.npz")
    assert set(arrays) == set(raw)
    for key, array in raw.items():
        assert arrays[key].dtype == array.dtype and np.array_equal(arrays[key], array), key


@pytest.mark.parametrize("mutate, expected", [
    (lambda a: a.pop("val_labels"), "lacks key(s) val_labels"),
    (lambda a: a.update(train_images=a["train_images"].reshape(8, 784)),
     "train_images has shape (8, 784); expected (N, 28, 28)"),
    (lambda a: a.update(test_images=a["test_images"].astype(np.float32) / 255),
     "test_images has dtype float32; expected uint8"),
    (lambda a: a.update(val_labels=a["val_labels"] + 3), "val_labels has labels 3..6"),
    (lambda a: a.update(train_labels=a["train_labels"][:5]), "train_labels has shape (5, 1)"),
    (lambda a: a.update(test_images=a["test_images"][:0], test_labels=a["test_labels"][:0]),
     "test_images is empty"),
])
def test_validation_names_file_key_and_expectation(tmp_path, mutate, expected):
    arrays = _raw()
    mutate(arrays)
    path = _save(tmp_path / "bad.npz", arrays)
    with pytest.raises(DataError) as err:
        validate_raw(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_validation_refuses_pickled_objects(tmp_path):
    arrays = _raw()
    arrays["train_labels"] = np.array([{"label": 1}] * 8, dtype=object)
    path = _save(tmp_path / "pickled.npz", arrays, allow_pickle=True)
    with pytest.raises(DataError, match="train_labels holds Python objects"):
        validate_raw(path)


def test_validation_rejects_non_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DataError, match="is not a readable .npz"):
        validate_raw(path)


def test_user_file_is_validated_then_copied(tmp_path):
    src = _save(tmp_path / "mine.npz", _raw())
    out = tmp_path / "raw" / "octmnist.npz"
    copy_user_file(src, out)
    assert out.read_bytes() == src.read_bytes()
    bad = _raw()
    bad["val_images"] = bad["val_images"].astype(np.int16)
    with pytest.raises(DataError, match="val_images has dtype int16"):
        copy_user_file(_save(tmp_path / "bad.npz", bad), tmp_path / "other.npz")
    assert not (tmp_path / "other.npz").exists()
    with pytest.raises(DataError, match="data.path is not set"):
        copy_user_file(None, out)


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _text(path: Path) -> None:
    path.write_text("train_images,train_labels\n0,1\n")


def _bad_crc(path: Path) -> None:
    arrays = _raw()
    _save(path, arrays)
    data = bytearray(path.read_bytes())
    data[data.index(arrays["val_images"].tobytes()) + 100] ^= 0xFF  # np.savez stores, unpacked
    path.write_bytes(data)


def _npz_of_members(path: Path, members: dict[str, bytes]) -> None:
    arrays = {f"{key}.npy": array for key, array in _raw().items()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array)
            archive.writestr(name, members.get(name, buf.getvalue()))


def _huge_shape(path: Path) -> None:
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)})
    member.write(_raw()["train_images"].tobytes())  # 8 images' bytes, 10**9 claimed: 730 GiB
    _npz_of_members(path, {"train_images.npy": member.getvalue()})


def _text_member(path: Path) -> None:
    _npz_of_members(path, {"test_labels.npy": b"0,1,2,3\n"})


# case -> (how to make the file, what its message must say)
BAD_FILES = {
    "zero_bytes": (_zero_bytes, ["is not a readable .npz file: it is empty (0 bytes)",
                                 "expected a MedMNIST-layout .npz holding train_images"]),
    "text": (_text, ["is not a readable .npz file: it is text (30 bytes), starting "
                     "'train_images,train_labels'", "expected a MedMNIST-layout .npz"]),
    "bad_crc": (_bad_crc, ["key val_images: val_images.npy is damaged",
                           "Bad CRC-32 for file 'val_images.npy'"]),
    "huge_shape": (_huge_shape, ["key train_images: the header of train_images.npy claims a "
                                 "uint8 array of shape (1000000000, 28, 28) "
                                 "(784,000,000,000 bytes) but the member holds 6,272 bytes"]),
    "text_member": (_text_member, ["key test_labels: test_labels.npy is not a .npy array",
                                   "expected a MedMNIST-layout .npz"]),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_gets_one_message_naming_file_and_member(tmp_path, case):
    make, expected = BAD_FILES[case]
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(DataError) as err:
        validate_raw(path)
    message = str(err.value)
    assert message.startswith(str(path))
    for part in expected:
        assert part in message
    assert "pickled" not in message


def _run_stage(workdir: Path, stage: str, params: dict) -> subprocess.CompletedProcess:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return run_module(f"stages.{stage}", cwd=workdir)


@pytest.mark.parametrize("stage", ["fetch", "prepare"])
@pytest.mark.parametrize("case", BAD_FILES)
def test_stage_fails_on_bad_file_with_message_and_no_output(tmp_path, case, stage):
    make, expected = BAD_FILES[case]
    work = tmp_path / "work"
    work.mkdir()
    if stage == "fetch":  # the user's own file, named by data.path
        bad = tmp_path / "mine.npz"
        shown, hint, kept = str(bad), "(data.path names this file", {"params.yaml"}
    else:  # the fetch stage's output, changed behind DVC's back
        bad = work / "data/raw/octmnist.npz"
        bad.parent.mkdir(parents=True)
        shown, hint = "data/raw/octmnist.npz", "run `dvc repro -f fetch`"
        kept = {"params.yaml", shown}
    make(bad)
    before = bad.read_bytes()
    proc = _run_stage(work, stage, {"seed": 0, "data": {
        "source": "file", "path": str(bad), "synthetic": {"scale": 0.01}}})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{stage} failed: {shown}")
    for part in [*expected, hint]:
        assert part in proc.stderr
    assert bad.read_bytes() == before
    assert {str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()} == kept


# -------------------------------------------------------------------------------- synthetic

def test_synthetic_is_seeded_and_shaped_like_octmnist():
    a, b, c = (synthetic_octmnist(seed, 0.01) for seed in (1, 1, 2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train_images"], c["train_images"])
    for split in ("train", "val"):
        assert len(a[f"{split}_images"]) == round(REAL_SIZES[split] * 0.01)
    assert a["test_images"].shape == (1000, 28, 28)
    assert a["train_images"].dtype == np.uint8 and a["train_labels"].shape[1] == 1
    assert np.bincount(a["test_labels"].ravel()).tolist() == [250] * 4


def test_synthetic_sizes_are_octmnists_times_the_scale_with_its_class_mix():
    # OctMNIST's sizes, which scale 1 gives; a tenth of them (not all 97,477 training images,
    # 0.6 GB of float64 on the way) for the class mix: 1 point is 2 standard errors of the
    # largest class's share at this size
    assert REAL_SIZES == {"train": 97477, "val": 10832, "test": 1000}
    data = synthetic_octmnist(0, 0.1)
    assert {k: len(v) for k, v in data.items() if k.endswith("labels")} == {
        "train_labels": 9748, "val_labels": 1083, "test_labels": 1000}
    mix = np.bincount(data["train_labels"].ravel()) / 9748
    np.testing.assert_allclose(mix, [0.3445, 0.1058, 0.0790, 0.4707], atol=0.01)


# ------------------------------------------------------------------------------ preparation

def test_report_test_subset_takes_first_of_each_class_in_file_order():
    labels = np.array([3, 0, 1, 0, 2, 3, 0, 1, 2, 3])
    keep = report_test_subset(labels, counts=(2, 1, 1, 2))
    assert keep.tolist() == [0, 1, 2, 3, 4, 5]
    assert np.bincount(labels[keep]).tolist() == [2, 1, 1, 2]


def test_report_test_subset_needs_enough_images_of_each_class_and_says_which():
    labels = np.array([0] * 200 + [1] * 55 + [2] * 40 + [3] * 250)
    expected = ("the test split has only 40 DRUSEN images; the report's test subset takes the "
                "first 182 CNV, 55 DME, 42 DRUSEN, 250 NORMAL")
    assert report_test_shortfall(labels) == expected
    assert report_test_shortfall(np.array([0, 1, 2, 3])) == (
        "the test split has only 1 CNV, 1 DME, 1 DRUSEN, 1 NORMAL images; the report's test "
        "subset takes the first 182 CNV, 55 DME, 42 DRUSEN, 250 NORMAL")
    assert report_test_shortfall(np.repeat(np.arange(4), 250)) is None
    with pytest.raises(DataError) as err:
        report_test_subset(labels)
    assert str(err.value) == expected


def test_features_divide_by_256_and_flatten():
    images = np.full((2, 28, 28), 255, dtype=np.uint8)
    x = features(images)
    assert x.shape == (2, 784) and x.dtype == np.float32
    assert x[0, 0] == np.float32(255 / 256)


def test_prepare_keeps_the_official_test_split_and_indexes_the_reports_subset(tmp_path):
    raw = tmp_path / "raw.npz"
    data = synthetic_octmnist(3, 0.01)
    np.savez(raw, **data)
    summary = prepare(raw, tmp_path / "prepared.npz", source="synthetic")
    assert summary["sizes"]["test"] == 1000
    assert summary["class_counts"]["test"] == {"CNV": 250, "DME": 250, "DRUSEN": 250,
                                               "NORMAL": 250}
    assert summary["report_test"] == {
        "size": sum(REPORT_TEST_COUNTS), "missing": None,
        "class_counts": dict(zip(("CNV", "DME", "DRUSEN", "NORMAL"), REPORT_TEST_COUNTS))}
    assert summary["dataset"] == "synthetic (not OctMNIST)"
    assert summary["md5"] == hashlib.md5(raw.read_bytes()).hexdigest()
    splits = load_prepared(tmp_path / "prepared.npz", bias=True)
    assert splits.x_train.shape == (len(data["train_labels"]), 785)
    assert splits.x_train.dtype == np.float32 and np.all(splits.x_train[:, -1] == 1)
    assert splits.dataset == "synthetic (not OctMNIST)" and splits.report_test_missing is None
    # the official split whole, in file order; the report's subset as indices into it
    np.testing.assert_array_equal(splits.x_test[:, :784], features(data["test_images"]))
    np.testing.assert_array_equal(splits.y_test, data["test_labels"].ravel())
    first = report_test_subset(data["test_labels"].ravel())
    np.testing.assert_array_equal(splits.report_test, first)
    assert splits.report_test.dtype == np.int64
    assert np.bincount(splits.y_test[splits.report_test]).tolist() == list(REPORT_TEST_COUNTS)


def test_prepare_of_a_file_without_the_reports_subset_records_why(tmp_path):
    data = synthetic_octmnist(3, 0.01)
    keep = np.flatnonzero(data["test_labels"].ravel() != 2)[:300]   # no DRUSEN, 300 images
    data["test_images"], data["test_labels"] = data["test_images"][keep], data["test_labels"][keep]
    raw = tmp_path / "mine.npz"
    np.savez(raw, **data)
    summary = prepare(raw, tmp_path / "prepared.npz", source="file")
    reason = summary["report_test"]["missing"]
    assert reason.startswith("the test split has only ")
    assert "0 DRUSEN" in reason and "takes the first 182 CNV, 55 DME, 42 DRUSEN, 250 NORMAL" \
        in reason
    assert summary["report_test"]["size"] == 0 and summary["sizes"]["test"] == 300
    splits = load_prepared(tmp_path / "prepared.npz")
    assert splits.report_test_missing == reason and splits.report_test.size == 0
    assert len(splits.y_test) == 300


def test_load_prepared_missing_file_says_which_stage(tmp_path):
    with pytest.raises(DataError, match=r"nope\.npz not found: run `dvc repro prepare` first"):
        load_prepared(tmp_path / "nope.npz")


def test_the_octmnist_source_is_medmnists_own_read_without_importing_the_package():
    import sys

    code = ("import sys; from hw1.data import medmnist_source; print(medmnist_source()); "
            "print(sorted(m for m in ('medmnist', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    source, imported = proc.stdout.strip().splitlines()

    from medmnist import INFO
    assert source == repr((INFO["octmnist"]["url"], INFO["octmnist"]["MD5"]))
    assert imported == "[]"
