"""The one error path of every stage: what a user can cause is one line, anything else a bug.

Every error a user can cause (bad params, bad or missing data, a missing or malformed input of
the report) derives from ``UserError`` and says what is wrong and how to fix it. ``run_stage``
runs a stage's ``main``: a ``UserError`` prints that one line and exits 1; any other exception
is a bug and propagates with its traceback.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """An error the user can fix; the message names what is wrong and how to fix it."""


def run_stage(main: Callable[..., Any], stage: str, *args: Any,
              heading: str | None = None) -> None:
    """Run ``main(*args)``; on a ``UserError`` print ``<heading>: <message>`` (``heading``
    defaults to ``<stage> failed``) to stderr and exit 1."""
    try:
        main(*args)
    except UserError as err:
        print(f"{heading or f'{stage} failed'}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
