"""Run a Ray Train trainer inside a Tune trial, reporting each epoch to Tune with its checkpoint.

Ray's own `TuneReportCallback` passes the metrics on but not the checkpoint. A trial
without a Tune checkpoint counts as "not started" when Tune restarts it (a retry, or
`Tuner.restore`): Tune then begins its `progress.csv` and `result.json` afresh and the
epochs already run vanish from the trial's history. So here every epoch's Train checkpoint
is handed to Tune too, and Tune's copies are the trial's checkpoints: Tune keeps the best N
by validation R^2 (its `CheckpointConfig`) and the ranked table points at them.

Tune's checkpoint is also the one record of how far a trial got. A restarted trial starts
a new Train run (`train`, then `train-2`, ...) from it. Re-running the old Train run would
restore from that run's own latest checkpoint, which may be an epoch Tune never heard of
(the search was stopped between the two), and the trial's history would skip it.

The Train controller waits for the driver to acknowledge each report before it goes on, so
Train's retention (it keeps only its latest checkpoint) never deletes a checkpoint that Tune
is still copying.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from ray.train.v2.api.callback import UserCallback

from raydream import storage

logger = logging.getLogger(__name__)


class _ForwardReports(UserCallback):
    """Runs in the Train controller: hands rank 0's metrics and the checkpoint of every report
    to the trial driver, and waits until the driver has reported them to Tune."""

    def __init__(self, reports, acks) -> None:
        self._reports, self._acks = reports, acks

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        self._reports.put((dict(metrics[0]), checkpoint))
        self._acks.get()


def new_run_name(trial_storage: str | Path) -> str:
    """`train` for a trial's first Train run, `train-2`, `train-3`, ... for its restarts."""
    attempt = 1
    while storage.is_dir(storage.join(trial_storage, "train" if attempt == 1 else f"train-{attempt}")):
        attempt += 1
    return "train" if attempt == 1 else f"train-{attempt}"


def fit_reporting_to_tune(build: Callable[[list, str, Any], Any], trial_storage: str | Path) -> None:
    """Build a trainer with `build(callbacks, run_name, resume_checkpoint)`, fit it, and
    `tune.report` every epoch it reports, with its checkpoint.

    Call from a Tune function trainable; `trial_storage` is where its Train runs go, and
    `resume_checkpoint` is the trial's latest Tune checkpoint (None on a first start).
    Raises what `trainer.fit()` raises, after the reports that came before the error have
    reached Tune.
    """
    from ray import tune
    from ray.util.queue import Empty, Queue

    reports = Queue(maxsize=1, actor_options={"num_cpus": 0})
    acks = Queue(maxsize=1, actor_options={"num_cpus": 0})
    run_name, resume = new_run_name(trial_storage), tune.get_checkpoint()
    if resume is not None:  # in the trial's stderr file: a retry, or --resume
        logger.warning("raydream: Train run %s goes on from the trial's %s", run_name, Path(resume.path).name)
    trainer = build([_ForwardReports(reports, acks)], run_name, resume)
    errors: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # re-raised in the trial's thread below
            errors.append(err)

    thread = threading.Thread(target=fit, name="train-fit", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not reports.empty():
            try:
                metrics, checkpoint = reports.get(timeout=1.0)
            except Empty:
                continue
            if checkpoint is not None:  # Train's Checkpoint class as Tune's (the same files)
                checkpoint = tune.Checkpoint(path=checkpoint.path, filesystem=checkpoint.filesystem)
            tune.report(metrics, checkpoint=checkpoint)
            acks.put(True)
        thread.join()
    finally:
        reports.shutdown()
        acks.shutdown()
    if errors:
        raise errors[0]
