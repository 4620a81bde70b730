"""Long work says how far it is: a line per step with the time left for the whole notebook.

A notebook that measures declares its plan up front — each section and the seconds its
budget allows (helpers.sizing) — and every step prints one line with the time so far and an
estimate of what is left of the whole notebook: the current section's unspent budget plus
the budgets of the sections still to come. Sections stop adaptively, so the estimate can only
shrink faster than the clock, never overrun the plan. In JupyterLab a tqdm bar (ipywidgets)
shows the same; headless, `make study` streams the lines to the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tqdm.auto import tqdm


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """The plan of one notebook: section name → planned seconds, in order."""

    def __init__(self, notebook: str, plan: Mapping[str, float], bar: bool = True) -> None:
        self.notebook = notebook
        self.plan = dict(plan)
        self.began = time.monotonic()
        self.current: str | None = None
        self.section_began = self.began
        self.done: set[str] = set()
        total = sum(self.plan.values())
        self.bar = tqdm(total=round(total), unit="s", desc=notebook, leave=False) if bar else None

    def left_s(self) -> float:
        """What the plan still allows: this section's unspent budget plus the ones to come."""
        now = time.monotonic()
        left = sum(s for n, s in self.plan.items() if n not in self.done and n != self.current)
        if self.current is not None:
            left += max(0.0, self.plan.get(self.current, 0.0) - (now - self.section_began))
        return left

    @contextmanager
    def section(self, name: str) -> Iterator[Progress]:
        if name not in self.plan:
            raise KeyError(f"section {name!r} is not in the plan {list(self.plan)}")
        self.current, self.section_began = name, time.monotonic()
        self.line(f"— {name} (budget {clock(self.plan[name])})")
        try:
            yield self
        finally:
            self.done.add(name)
            self.current = None
            self.line(f"— {name} done in {clock(time.monotonic() - self.section_began)}")

    def line(self, text: str) -> None:
        """One terminal line: elapsed, what is left of the notebook at most, and `text`."""
        elapsed = time.monotonic() - self.began
        left = self.left_s()
        print(f"[{self.notebook} {clock(elapsed)}, ≤{clock(left)} left] {text}", flush=True)
        if self.bar is not None:
            self.bar.total = round(elapsed + left)
            self.bar.n = round(elapsed)
            self.bar.refresh()

    def __call__(self, text: str) -> None:
        self.line(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
