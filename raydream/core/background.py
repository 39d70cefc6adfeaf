"""Work run in a daemon thread, waited for later (a small shared helper; no Ray)."""

from __future__ import annotations

import threading
from typing import Any, Callable


class InBackground:
    """fn(*args) run in a daemon thread (one that does not hold up the process's exit);
    `result()` waits for it and returns its value or raises its exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), name=f"background-{fn.__name__}",
                                        daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._value = fn(*args)
        except BaseException as err:  # re-raised by result()
            self._error = err

    def result(self, timeout_s: float | None = None) -> Any:
        """fn's value, once it has returned (waiting at most `timeout_s` seconds; None: as long
        as it takes).

        Raises:
            TimeoutError: fn was still running after `timeout_s` seconds (it goes on running).
            What fn raised.
        """
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"{self._thread.name} still running after {timeout_s:g} s")
        if self._error is not None:
            raise self._error
        return self._value
