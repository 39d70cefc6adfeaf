"""The channel between a Tune trial and its Train run: the run's controller, or, for a run
in Ray Train's local mode, the training loop in the trial's own process.

Kept apart from `raydream.train.trial` so that what the Train controller imports is small:
each Train run starts a controller process, and on 2 cores every import there is time a
trial does not train. The callbacks here talk to the trial's `raydream.train.channel.RunLink`
actor.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.train.v2._internal.execution.callback import ControllerCallback
from ray.train.v2.api.callback import UserCallback

logger = logging.getLogger(__name__)


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
