#!/usr/bin/env bash
# One short GPU check of Question 2's stage code: tiny synthetic runs with device: cuda and auto,
# a rerun to compare metrics, and the saved state_dict loaded back on the CPU.
# Usage (from the repository root, on a machine with CUDA): bash benchmarks/cuda_check.sh
set -euo pipefail
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
cd "$(mktemp -d)"
python3 - <<'PY'
import torch, yaml
from hw1.data import prepare, write_synthetic
print("torch", torch.__version__, "| CUDA available:", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
write_synthetic("raw.npz", seed=42, scale=0.05)
prepare("raw.npz", "data/prepared/octmnist.npz", "train", "synthetic")
ffn = {"model": "feedforward", "epochs": 3, "lr": 0.1, "batch_size": 16, "hidden_size": 200,
       "layers": 2, "dropout": 0.2, "activation": "relu", "l2_decay": 0.0001,
       "optimizer": "sgd", "device": "cuda"}
logreg = {"model": "logistic_regression", "epochs": 3, "lr": 0.01, "batch_size": 16,
          "l2_decay": 0.0, "optimizer": "sgd", "device": "cuda"}
yaml.safe_dump({"seed": 42, "train": ffn,
                "q2": {"bs256": {**ffn, "batch_size": 256}, "logreg": logreg,
                       "auto": {**ffn, "device": "auto"}}}, open("params.yaml", "w"))
PY
for key in train q2.bs256 q2.logreg q2.auto; do python3 -m stages.train_torch "$key" 2>/dev/null; done
cp metrics/train.json first.json
python3 -m stages.train_torch train 2>/dev/null
python3 - <<'PY'
import json, torch
a, b = (json.load(open(p)) for p in ("first.json", "metrics/train.json"))
same = {k: a[k] == b[k] for k in a if k != "train_seconds"}
print("train metrics:", json.dumps(a))
print("rerun identical (all but train_seconds):", all(same.values()), same)
print(open("plots/train.csv").read().strip())
state = torch.load("models/train.pt", weights_only=True, map_location="cpu")
print("state_dict:", {k: tuple(v.shape) for k, v in state.items()},
      "saved on", {str(v.device) for v in state.values()})
PY
