"""One Tune trial = one Ray Train run: a Tune class `Trainable` that owns its Train run.

Why a class, and why it owns the run (measured with Ray 2.60):

* When Tune stops a trial (ASHA at a rung, or the last epoch reached), it ends the trial's
  actor at once. A Train run started inside it by `trainer.fit()` then loses its controller
  without shutting its worker group down, and the workers' placement group outlives the
  trial. Train leaves its removal to a detached cleaner that asks the dashboard's State API
  whether the controller is dead; when that API cannot answer (no dashboard, or another Ray
  instance on the same machine: "Found multiple active Ray instances"), the CPUs stay held
  and the next trial's Ray Data reads wait for them forever.
  Here `cleanup()`, which Tune calls before it ends the actor, ends the Train run itself:
  after the last epoch it waits for the run to finish; otherwise it aborts it through the
  Train controller, which removes the workers and their placement group. Nothing depends on
  the State API.
* Every wait is bounded. `step()` waits for the Train run's next epoch for at most the
  stall limit (`--stall-timeout`, or three times the slowest epoch so far if that is longer),
  counted from when the run's workers are placed, if the run had to wait for them.
  A run that stays silent longer is aborted and the trial fails with one line that says what
  it was waiting for (from the Train controller's state and the cluster's free resources);
  Tune retries it under `--max-failures`.

Local mode: a one-worker network trial runs its Train run in Ray Train's local mode (see
`raydream.train.config.uses_local_mode`): `trainer.fit()` runs the worker's loop in a thread
of the trial's own process, which holds the worker's CPUs (and GPUs), and the loop hands
each report to the trial itself. Such a run waits at each report until Tune asks for the
next epoch; stopping it ends that wait (`RunLink.end_run`), and the loop returns. There is no
controller to abort.

Checkpoints: every epoch's Train checkpoint is copied into Tune's checkpoint (`save_checkpoint`)
before the Train run is let go on to the next epoch, so Train's own retention (it keeps only
its latest) never deletes a checkpoint Tune has not copied yet. A restarted trial (a retry, or
`--resume`) starts a new Train run (`train`, then `train-2`, ...) from the Tune checkpoint it is
restored from, so the trial's history never skips an epoch Tune did not hear of.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

import ray
import ray.train
from ray import tune
from ray.tune.result import DONE, SHOULD_CHECKPOINT
from raydream.core import storage
from raydream.train.config import DRIVER_RESOURCE, DRIVER_SHARE, trial_config
from raydream.train.channel import RunLink
from raydream.train.run_link import ControllerLink, ForwardReports

logger = logging.getLogger(__name__)

RESTORED_CHECKPOINT = "restored_checkpoint"  # under the trial's directory: where a restarted run starts from
STALL_FACTOR = 3  # the stall limit is at least this many times the trial's slowest epoch
STOP_TIMEOUT_S = 90.0  # how long cleanup waits for a Train run to end or abort
LOCAL_STOP_TIMEOUT_S = 5.0  # how long cleanup waits for a stopped local-mode loop to leave its report
SCHEDULING_GRACE_S = 30.0  # past the stall limit, for a run placing its workers to end by itself
_POLL_S = 1.0
# Train controller states in which the run waits for its worker group's resources.
_SCHEDULING_STATES = ("InitializingState", "SchedulingState", "ReschedulingState", "RestartingState",
                      "ResizingState")


class TrialStalled(RuntimeError):
    """A Train run reported nothing for longer than its stall limit."""


def new_run_name(trial_storage: str | Path) -> str:
    """`train` for a trial's first Train run, `train-2`, `train-3`, ... for its restarts."""
    attempt = 1
    while storage.is_dir(storage.join(trial_storage, "train" if attempt == 1 else f"train-{attempt}")):
        attempt += 1
    return "train" if attempt == 1 else f"train-{attempt}"


class TrainRun:
    """A Train run fitted in a thread of the trial, with the events its controller sends.

    build(callbacks, run_name, resume_checkpoint) -> trainer; link: the trial's `RunLink` actor;
    local: the run is in Ray Train's local mode (its loop runs in the thread).
    """

    def __init__(self, build: Callable[[list, str, Any], Any], trial_storage: str, resume, link,
                 local: bool = False) -> None:
        self.link = link
        self.local = local
        self._number = ray.get(link.start_run.remote())
        self.run_name = new_run_name(trial_storage)
        self.controller = None
        self.state: str | None = None
        self.error: BaseException | None = None
        self._unacked = False
        self._stopping = False
        trainer = build([ForwardReports(link, self._number), ControllerLink(link, self._number)], self.run_name,
                        resume)
        self._thread = threading.Thread(target=self._fit, args=(trainer,), name="train-fit", daemon=True)
        self._thread.start()

    def _fit(self, trainer) -> None:
        try:
            trainer.fit()
        except BaseException as err:  # re-raised by next_report, unless the run was stopped
            self.error = err

    def next_report(self, limit_s: float) -> tuple[dict, Any] | None:
        """The next epoch's (metrics, Train checkpoint), or None once the run has ended.

        Raises:
            TrialStalled: nothing was reported for `limit_s` seconds (the run is aborted).
            What the Train run raised, if it failed.
        """
        self.ack()
        deadline = time.monotonic() + limit_s
        while True:
            event = ray.get(self.link.next_event.remote(self._number, _POLL_S))
            if event is None:
                if not self._thread.is_alive() and not ray.get(self.link.pending.remote(self._number)):
                    if self.error is not None and not self._stopping:
                        if _is_startup_timeout(self.error):  # Train's own bounded wait ended the run
                            raise TrialStalled(self._stall_reason(scheduling=True))
                        raise self.error
                    return None
                late = time.monotonic() - deadline
                # A run still placing its workers ends by itself when Train's wait for them
                # (the same limit) runs out; an abort would not be heard before then.
                if late > (SCHEDULING_GRACE_S if self.state in _SCHEDULING_STATES else 0):
                    raise TrialStalled(self._stall_reason())
                continue
            if event[0] == "controller":
                self.controller = event[1]
            elif event[0] == "state":
                if self.state in _SCHEDULING_STATES + (None,) and event[1] not in _SCHEDULING_STATES:
                    # Its workers are placed: the limit counts from here, not from the wait
                    # for them (which Train bounds by the same limit).
                    deadline = time.monotonic() + limit_s
                self.state = event[1]
            else:
                self._unacked = True
                return event[1], event[2]

    def ack(self) -> None:
        """Let the Train run go on past its last report."""
        if self._unacked:
            self._unacked = False
            ray.get(self.link.ack.remote(self._number))

    def _stall_reason(self, scheduling: bool = False) -> str:
        if self.local:
            what = ("its training loop (Ray Train local mode, in the trial's process) was running; Ray Data may have "
                    "been waiting for resources")
        elif self.controller is None and not scheduling:
            what = "its Train controller never started"
        elif scheduling or self.state in _SCHEDULING_STATES or self.state is None:
            what = "its Train workers were waiting for their resources"
        else:
            what = f"its Train workers were running (controller {self.state}); Ray Data may have been waiting for resources"
        return f"{what}; the cluster had {free_resources()} free"

    def stop(self, finished: bool, wait: bool = True) -> None:
        """End the run: after its last epoch, let it finish; otherwise abort it through its
        controller (workers and their placement group removed). Bounded by STOP_TIMEOUT_S.

        wait: wait for a finished run to end. Without it, the run shuts its workers down in
        the background (~0.7 s on 2 cores) while the trial's actor goes on to the next trial,
        whose workers are placed once those resources are free.
        """
        self._stopping = True
        deadline = time.monotonic() + STOP_TIMEOUT_S
        if self.local and not finished:
            # The loop waits at its last report, or is in an epoch and stops at the next one;
            # a loop that never reports again ends with the trial's process.
            ray.get(self.link.end_run.remote(self._number))
            self._thread.join(timeout=LOCAL_STOP_TIMEOUT_S if wait else 0)
            return
        self.ack()
        if finished and not wait:
            return
        if finished:
            self._thread.join(timeout=STOP_TIMEOUT_S / 2)
        if self._thread.is_alive() and self.controller is not None:
            try:
                ray.get(self.controller.abort.remote(), timeout=max(1.0, deadline - time.monotonic()))
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                pass  # abort ends the controller's process: its call never returns a value
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            logger.warning("raydream: the Train run %s did not end within %.0f s of being stopped",
                           self.run_name, STOP_TIMEOUT_S)


def _is_startup_timeout(error: BaseException) -> bool:
    """A Train run that ended because its worker group could not be placed in time."""
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

    return isinstance(getattr(error, "controller_failure", None), WorkerGroupStartupTimeoutError)


def free_resources() -> str:
    """The cluster's free CPUs and GPUs, e.g. "0 of 2 CPU, 0 of 0 GPU"."""
    try:
        free, total = ray.available_resources(), ray.cluster_resources()
    except Exception:  # only used to explain a stall
        return "an unknown amount of resources"
    return ", ".join(f"{free.get(k, 0):g} of {total.get(k, 0):g} {k}" for k in ("CPU", "GPU"))


class TrainRunTrial(tune.Trainable):
    """Tune class trainable: one Ray Train run (see the module docstring).

    with_parameters: setup (the search's `TrialSetup`) and space (its `SearchSpace`, which
    resolves the sampled config). A "lightgbm" trial is a LightGBMTrainer, any network a
    TorchTrainer.
    """

    def setup(self, config: dict, setup=None, space=None) -> None:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        self._setup, self._space = setup, space
        self._link = None  # the RunLink actor, started with the first Train run, ends with this actor
        self._begin(config)

    def reset_config(self, new_config: dict) -> bool:
        """Reuse this actor for another trial (Tune's reuse_actors): the last trial's Train run
        is stopped first, as in `cleanup`; a finished one ends in the background."""
        self._end_run(wait=False)
        self._begin(new_config)
        return True

    def _begin(self, config: dict) -> None:
        from raydream.train.loop import build_trainer, runs_locally
        from raydream.train.tree_loop import build_lightgbm_trainer

        self._config = trial_config(self._space.resolve(config))  # typed here, once
        self._build = build_lightgbm_trainer if self._config.model == "lightgbm" else build_trainer
        setup = self._setup
        self._local = runs_locally(setup, self._config.model)
        self._max_epochs = self._config.train.max_epochs
        # Train writes its checkpoints straight into the experiment's storage, under the
        # trial's directory name, so the checkpoints the trial reports outlive the session.
        self._trial_storage = storage.join(setup.experiment_dir, Path(self.logdir).name)
        self._resume = None
        self._run: TrainRun | None = None
        self._checkpoint = None  # the Train checkpoint of the last report, until Tune copies it
        self._last_epoch = 0
        self._slowest_epoch_s = 0.0

    def _stall_limit(self) -> float:
        return max(self._setup.stall_timeout, STALL_FACTOR * self._slowest_epoch_s)

    def step(self) -> dict:
        if self._run is None:
            if self._link is None:
                self._link = ray.remote(num_cpus=0, max_concurrency=4)(RunLink).remote()
            self._run = TrainRun(
                lambda callbacks, run_name, resume: self._build(
                    self._config, self._setup, self._trial_storage, callbacks, run_name, resume),
                self._trial_storage, self._resume, self._link, local=self._local,
            )
            if self._resume is not None:  # in the trial's stderr file: a retry, or --resume
                logger.warning("raydream: Train run %s goes on from the trial's checkpoint of epoch %d",
                               self._run.run_name, self._last_epoch)
        limit = self._stall_limit()
        try:
            report = self._run.next_report(limit)
        except TrialStalled as stalled:
            self._run.stop(finished=False)
            raise TrialStalled(f"trial {self.trial_id}: no epoch reported for {limit:.0f} s after epoch "
                               f"{self._last_epoch}: {stalled}") from None
        if report is None:
            raise RuntimeError(f"trial {self.trial_id}: its Train run ended after epoch {self._last_epoch} of "
                               f"{self._max_epochs} without an error")
        metrics, self._checkpoint = report
        self._last_epoch = int(metrics["epoch"])
        if math.isfinite(metrics.get("epoch_s", math.nan)):
            self._slowest_epoch_s = max(self._slowest_epoch_s, float(metrics["epoch_s"]))
        result = {**metrics, SHOULD_CHECKPOINT: self._checkpoint is not None}
        if self._last_epoch >= self._max_epochs:
            result[DONE] = True
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        if self._checkpoint is not None:
            self._checkpoint.to_directory(checkpoint_dir)
            self._checkpoint = None
        # A run with workers goes on to its next epoch now, and is aborted at once if Tune
        # stops the trial. A run in local mode cannot be stopped inside an epoch: it goes on
        # when Tune asks for the next one (`step`), so that a stopped trial trains no
        # epoch beside the next trial in the same process.
        if self._run is not None and not self._run.local:
            self._run.ack()

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        # Tune hands over a local copy; the Train workers, maybe on other nodes, read the
        # resume point from the trial's storage.
        from raydream.train.checkpoint import read_meta

        self._last_epoch = int(read_meta(checkpoint_dir)["epoch"])
        target = storage.join(self._trial_storage, RESTORED_CHECKPOINT)
        storage.replace_dir(checkpoint_dir, target)
        fs, path = storage.filesystem(target)
        self._resume = ray.train.Checkpoint(path=path, filesystem=fs)

    def cleanup(self) -> None:
        self._end_run(wait=True)

    def _end_run(self, wait: bool) -> None:
        if self._run is not None:
            self._run.stop(finished=self._last_epoch >= self._max_epochs, wait=wait)
            self._run = None


def run_forest(config: dict, setup, space) -> None:
    """Tune function trainable for a random forest (see `raydream.train.tree_loop`)."""
    from raydream.train.tree_loop import run_forest_trial

    run_forest_trial(trial_config(space.resolve(config)), setup)


def trainable(space, setup, cpus_per_trial: int):
    """The Tune trainable of a search space's trials, with its resources: how each family
    trains.

    Ray Train runs (networks, LightGBM): `TrainRunTrial`, a driver on a sliver of
    DRIVER_RESOURCE whose Train workers reserve the CPUs; a run in local mode
    (`raydream.train.loop.runs_locally`) has no workers, and its trial holds `cpus_per_trial`
    CPUs and the worker's GPUs itself. Random forest: one process holding its
    `cpus_per_trial` CPUs itself (n_jobs threads). space: the search's space (anything with
    `model` and `resolve(config)`, see `raydream.tuning.space`), passed to every trial.
    """
    from ray.tune import PlacementGroupFactory

    from raydream.train.loop import runs_locally

    if space.model == "random_forest":
        return tune.with_resources(tune.with_parameters(run_forest, setup=setup, space=space), {"CPU": cpus_per_trial})
    local = {"CPU": cpus_per_trial, **({"GPU": setup.gpus_per_worker} if setup.gpus_per_worker else {})}
    driver = {DRIVER_RESOURCE: DRIVER_SHARE}
    kinds = {runs_locally(setup, part.model) for part in space.parts}
    if len(kinds) == 1:
        resources = local if kinds == {True} else driver
    else:  # a search across families: each trial as its drawn family trains
        def resources(config: dict) -> PlacementGroupFactory:
            return PlacementGroupFactory([local if runs_locally(setup, trial_config(space.resolve(config)).model)
                                          else driver])
    return tune.with_resources(tune.with_parameters(TrainRunTrial, setup=setup, space=space), resources)
