"""The channel between a Tune trial and the controller of its Train run.

Kept apart from `raydream.train.trial` so that what the Train controller and the link actor
import is small: each Train run starts them as new processes, and on 2 cores every import
there is time a trial does not train.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

import ray
from ray.train.v2._internal.execution.callback import ControllerCallback
from ray.train.v2.api.callback import UserCallback

logger = logging.getLogger(__name__)


class RunLink:
    """The one channel between a trial and its Train run's controller (a small threaded
    actor): events from the controller (its handle, its states, each report) and the trial's
    acknowledgement of each report."""

    def __init__(self) -> None:
        self._events: queue.Queue = queue.Queue()
        self._acks: queue.Queue = queue.Queue(maxsize=1)

    def send(self, event: tuple) -> None:
        self._events.put(event)

    def next_event(self, timeout_s: float) -> tuple | None:
        try:
            return self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def pending(self) -> bool:
        return not self._events.empty()

    def ack(self) -> None:
        try:
            self._acks.put_nowait(True)
        except queue.Full:  # acknowledged already: the controller has not taken the last one yet
            pass

    def wait_for_ack(self) -> None:
        self._acks.get()


class ForwardReports(UserCallback):
    """In the Train controller: hands rank 0's metrics and the checkpoint of every report to
    the trial, and waits until the trial has copied the checkpoint."""

    def __init__(self, link) -> None:
        self._link = link

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        ray.get(self._link.send.remote(("report", dict(metrics[0]), checkpoint)))
        ray.get(self._link.wait_for_ack.remote())


class ControllerLink(ControllerCallback):
    """In the Train controller: tells the trial the controller's handle (to abort the run with)
    and each state it enters (to say what a silent run waits for)."""

    def __init__(self, link) -> None:
        self._link = link

    def after_controller_start(self, train_run_context) -> None:
        self._send(("controller", ray.get_runtime_context().current_actor))

    def after_controller_state_update(self, previous_state, current_state) -> None:
        self._send(("state", type(current_state).__name__))

    def _send(self, event: tuple) -> None:
        try:
            self._link.send.remote(event)
        except Exception:  # the trial is gone; the run is being torn down
            logger.debug("raydream: could not send %s to the trial", event[0], exc_info=True)
