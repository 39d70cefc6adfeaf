"""Run a Ray Train trainer inside a Tune trial, reporting each epoch to Tune with a checkpoint.

Ray's own `TuneReportCallback` passes the metrics on but not a Tune checkpoint. A trial
without a Tune checkpoint counts as "not started" when Tune restarts it (a retry, or
`Tuner.restore`): Tune then begins its `progress.csv` and `result.json` afresh and the
epochs already run vanish from the trial's history. So each report here also gives Tune a
small checkpoint that points at the Train checkpoint (the model itself is not copied).

Tune's checkpoint is the one record of how far a trial got. A restarted trial starts a new
Train run (`train`, then `train-2`, ...) from the Train checkpoint it points to. Re-running
the old Train run would instead restore from that run's latest checkpoint, which may be
an epoch that Tune never heard of (the search was stopped between the two), and the trial's
history would skip it.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from ray.train.v2.api.callback import UserCallback

CHECKPOINT_PATH_KEY = "checkpoint_path"  # the column `raydream.results` reads, as Ray's callback names it
POINTER_FILE = "train_checkpoint.json"


class _ForwardReports(UserCallback):
    """Runs in the Train controller: puts rank 0's metrics and the checkpoint path of every
    report on a queue that the trial driver reads."""

    def __init__(self, queue) -> None:
        self._queue = queue

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        item = dict(metrics[0])
        if checkpoint is not None:
            item[CHECKPOINT_PATH_KEY] = checkpoint.path
        self._queue.put(item)  # blocks until the driver has taken the previous report


def resume_point() -> str | None:
    """The Train checkpoint directory that this trial's Tune checkpoint points to, if any."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return json.loads(Path(directory, POINTER_FILE).read_text())["path"]


def new_run_name(trial_storage: str | Path) -> str:
    """`train` for a trial's first Train run, `train-2`, `train-3`, ... for its restarts."""
    attempt = 1
    while Path(trial_storage, "train" if attempt == 1 else f"train-{attempt}").exists():
        attempt += 1
    return "train" if attempt == 1 else f"train-{attempt}"


def fit_reporting_to_tune(build: Callable[[list, str, str | None], Any], trial_storage: str | Path) -> None:
    """Build a trainer with `build(callbacks, run_name, resume_checkpoint)`, fit it, and
    `tune.report` every epoch it reports.

    Call from a Tune function trainable; `trial_storage` is where its Train runs go.
    Raises what `trainer.fit()` raises, after the reports that came before the error have
    reached Tune.
    """
    from ray import tune
    from ray.util.queue import Empty, Queue

    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    trainer = build([_ForwardReports(queue)], new_run_name(trial_storage), resume_point())
    errors: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # re-raised in the trial's thread below
            errors.append(err)

    thread = threading.Thread(target=fit, name="train-fit", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not queue.empty():
            try:
                item = queue.get(timeout=1.0)
            except Empty:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp, POINTER_FILE).write_text(json.dumps({"path": item.get(CHECKPOINT_PATH_KEY)}))
                tune.report(item, checkpoint=tune.Checkpoint.from_directory(tmp))
        thread.join()
    finally:
        queue.shutdown()
    if errors:
        raise errors[0]
