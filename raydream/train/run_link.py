"""The channel between a Tune trial and its Train run: the run's controller, or, for a run
in Ray Train's local mode, the training loop in the trial's own process.

Kept apart from `raydream.train.trial` so that what the Train controller and the link actor
import is small: each Train run starts a controller process, and on 2 cores every import
there is time a trial does not train.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import ray
from ray.train.v2._internal.execution.callback import ControllerCallback
from ray.train.v2.api.callback import UserCallback

logger = logging.getLogger(__name__)


class RunLink:
    """The one channel between a trial and its Train runs (a small threaded actor, started once
    per trial actor and kept for the next trials Tune gives that actor): events from the run
    (its controller's handle and states, each report) and the trial's acknowledgement of each
    report.

    Each Train run has a number (`start_run`); what an earlier run still sends is dropped, and
    its wait for an acknowledgement ends, so an aborted run never takes a later run's events
    or acknowledgements. `end_run` ends the current run's wait without a next run.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._run = 0
        self._events: deque = deque()
        self._acked = False

    def start_run(self) -> int:
        """A new Train run: the number its callbacks send with."""
        with self._changed:
            self._run += 1
            self._events.clear()
            self._acked = False
            self._changed.notify_all()
            return self._run

    def send(self, run: int, event: tuple) -> None:
        with self._changed:
            if run == self._run:
                self._events.append(event)
                self._changed.notify_all()

    def next_event(self, run: int, timeout_s: float) -> tuple | None:
        with self._changed:
            self._changed.wait_for(lambda: self._events or run != self._run, timeout=timeout_s)
            return self._events.popleft() if run == self._run and self._events else None

    def pending(self, run: int) -> bool:
        with self._changed:
            return run == self._run and bool(self._events)

    def ack(self, run: int) -> None:
        with self._changed:
            if run == self._run:
                self._acked = True
                self._changed.notify_all()

    def end_run(self, run: int) -> None:
        """The trial stopped `run`: its wait for an acknowledgement ends, and what it still
        sends is dropped."""
        with self._changed:
            if run == self._run:
                self._run += 1
                self._events.clear()
                self._acked = False
                self._changed.notify_all()

    def wait_for_ack(self, run: int) -> bool:
        """Wait until the trial acknowledges the last report of `run`: True, or False when
        the run was ended (`end_run`) or a later one started instead."""
        with self._changed:
            self._changed.wait_for(lambda: self._acked or run != self._run)
            if run == self._run:
                self._acked = False
                return True
            return False


class RunEnded(Exception):
    """The trial stopped a run in Ray Train's local mode while its loop waited at a report."""


class ForwardReports(UserCallback):
    """In the Train controller (or, in local mode, the loop): hands rank 0's metrics and the
    checkpoint of every report to the trial, and waits until the trial has copied the
    checkpoint."""

    def __init__(self, link, run: int) -> None:
        self._link, self._run = link, run

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        try:
            self.hand_over(metrics[0], checkpoint)
        except RunEnded:
            pass  # the trial aborts the run through its controller

    def hand_over(self, metrics: dict[str, Any], checkpoint) -> None:
        """Give the trial one report and wait until it has copied the report's checkpoint.
        Called by the loop itself in local mode, where no controller runs callbacks.

        Raises:
            RunEnded: the trial stopped the run instead.
        """
        ray.get(self._link.send.remote(self._run, ("report", dict(metrics), checkpoint)))
        if not ray.get(self._link.wait_for_ack.remote(self._run)):
            raise RunEnded(f"Train run {self._run} was stopped by its trial")


class ControllerLink(ControllerCallback):
    """In the Train controller: tells the trial the controller's handle (to abort the run with)
    and each state it enters (to say what a silent run waits for)."""

    def __init__(self, link, run: int) -> None:
        self._link, self._run = link, run

    def after_controller_start(self, train_run_context) -> None:
        self._send(("controller", ray.get_runtime_context().current_actor))

    def after_controller_state_update(self, previous_state, current_state) -> None:
        self._send(("state", type(current_state).__name__))

    def _send(self, event: tuple) -> None:
        try:
            self._link.send.remote(self._run, event)
        except Exception:  # the trial is gone; the run is being torn down
            logger.debug("raydream: could not send %s to the trial", event[0], exc_info=True)
