"""Stopping a stack: every step runs even when an earlier one failed; the first error is raised.

Both backends stop the same way — k6 first, then the services, then what watched them — and a
step that fails (a process that will not die, a cgroup still busy, an engine that times out)
must not leave the later steps undone, or the next run finds ports held and cgroups occupied.
`Teardown` collects the errors and raises the first at the end; members of one step stop in
parallel, so each gets its SIGTERM grace period at the same time, not one after another.

    with Teardown() as teardown:
        teardown.stop_all(generators)
        teardown.step(compose.run, "down")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol


class Stoppable(Protocol):
    def stop(self) -> Any: ...


class Teardown:
    """Run steps, keep their errors, raise the first one when the `with` block ends."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def step(self, call: Callable[..., Any], *args: Any) -> None:
        """Run one step; an Exception is kept for later (KeyboardInterrupt is not caught)."""
        try:
            call(*args)
        except Exception as error:
            self.errors.append(error)

    def stop_all(self, members: Iterable[Stoppable]) -> None:
        """Stop every member in parallel and wait for all of them."""
        members = list(members)
        if not members:
            return
        with ThreadPoolExecutor(max_workers=len(members)) as pool:
            for future in [pool.submit(member.stop) for member in members]:
                try:
                    future.result()
                except Exception as error:
                    self.errors.append(error)

    def __enter__(self) -> Teardown:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None and self.errors:
            raise self.errors[0]
