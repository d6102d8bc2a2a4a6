"""Per-epoch progress for the training loops: a live bar on a terminal, a line per epoch in logs."""
from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


class EpochProgress:
    """Report each finished epoch's figures without flooding logs.

    On a terminal this is a tqdm bar whose postfix shows the latest figures. Elsewhere (CI,
    `dvc queue` logs) it prints one line per epoch, thinned to about 20 lines for long runs.
    """

    def __init__(self, desc: str, epochs: int, stream: TextIO | None = None):
        self.desc, self.epochs = desc, epochs
        self.stream = stream or sys.stderr
        self.every = max(1, epochs // 20)
        self.bar = (tqdm(total=epochs, desc=desc, unit="epoch", file=self.stream, leave=True)
                    if self.stream.isatty() else None)

    def update(self, epoch: int, **figures: float) -> None:
        text = " ".join(f"{k}={v:.4f}" for k, v in figures.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        elif epoch % self.every == 0 or epoch == self.epochs or epoch == 1:
            print(f"{self.desc} epoch {epoch}/{self.epochs} {text}", file=self.stream, flush=True)

    def stopped(self, epoch: int, reason: str) -> None:
        """Say, in one line, that the run diverged and stopped after ``epoch``."""
        print(f"{self.desc}: {reason} at epoch {epoch}: stopped (diverged)", file=self.stream,
              flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
