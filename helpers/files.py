"""Run files written whole or not at all.

A run folder is read back later — by the analysis, the study driver, a re-analysis months on —
so a file cut short by a crash, a full disk or a Ctrl-C in the middle of a write must never be
what a reader finds. Every record of a run (study.json, stack.json, events.json,
load_test.json, summary.json …) is written to a temporary file in the same folder, flushed to
disk, and renamed over the old one: a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str) -> Path:
    """Replace `path` with `text` atomically (same-folder temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as sink:
            sink.write(text)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, value: Any, **options: Any) -> Path:
    """`value` as indented JSON, atomically (`options` go to json.dumps)."""
    return write_text(path, json.dumps(value, indent=2, **options) + "\n")
