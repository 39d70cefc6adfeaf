"""Bounds on a running search, as Tune callbacks: trials that cannot start, and failed trials
said in one line (the search layer; Ray is imported only when a watch is made)."""

from __future__ import annotations

import time
from pathlib import Path

from raydream.plan import ResourcePlan

# The watch of the search running in this process. A search's callbacks and stopper are
# pickled into its experiment (tuner.pkl); they unpickle as this process's watch, so that a
# resumed search reports to the watch it made. (They must be defined in an imported module:
# cloudpickle copies what `python -m raydream.tune` defines, its `__main__`, by value.)
_ACTIVE_WATCH: dict[str, "SearchStallWatch"] = {}


def _active_watch_part(part: str):
    return getattr(_ACTIVE_WATCH["watch"], part)


class SearchStallWatch:
    """Bounds the wait for trials to start, and says each trial failure in one line.

    If trials are pending and none has run for `limit_s` seconds (their resources are held
    by something else: another search, or a cluster too small for them), the stopper ends
    the search and `reason` says what the trials waited for. A trial that fails is printed
    as one line (Tune's traceback goes to the trial's error.txt, and to the console with -v).
    """

    def __init__(self, limit_s: float, plan: ResourcePlan) -> None:
        from ray.tune import Callback
        from ray.tune.stopper import Stopper

        watch = self
        self.limit_s, self.plan = limit_s, plan
        self.reason: str | None = None
        self._waiting_since: float | None = None
        _ACTIVE_WATCH["watch"] = self

        class _Callback(Callback):
            def on_step_begin(self, iteration, trials, **info):
                watch._observe(trials)

            def on_trial_error(self, iteration, trials, trial, **info):
                watch._trial_failed(trial, "")

            def on_trial_recover(self, iteration, trials, trial, **info):
                checkpointed = trial.latest_checkpoint_result is not None
                watch._trial_failed(trial, "; retrying it" + (" from its last checkpoint" if checkpointed else ""))

            def __reduce__(self):
                return _active_watch_part, ("callback",)

        class _Stopper(Stopper):
            def __call__(self, trial_id, result):
                return False

            def stop_all(self):
                return watch.reason is not None

            def __reduce__(self):
                return _active_watch_part, ("stopper",)

        self.callback, self.stopper = _Callback(), _Stopper()

    def _observe(self, trials) -> None:
        waiting = any(t.status == "PENDING" for t in trials)
        running = any(t.status in ("RUNNING", "PAUSED") for t in trials)
        if not waiting or running:
            self._waiting_since = None
            return
        now = time.monotonic()
        self._waiting_since = self._waiting_since or now
        if self.reason is None and now - self._waiting_since > self.limit_s:
            from raydream.train.trial import free_resources

            gpus = f" + {self.plan.gpus_per_trial:g} GPU" if self.plan.gpus_per_trial else ""
            self.reason = (f"no trial could start for {self.limit_s:.0f} s (--stall-timeout): each needs "
                           f"{self.plan.cpus_per_trial:g} CPU{gpus}, and the cluster had {free_resources()} free")

    @staticmethod
    def _trial_failed(trial, then: str) -> None:
        last = ""
        try:
            if trial.error_file:
                last = Path(trial.error_file).read_text().strip().splitlines()[-1]
        except (OSError, IndexError):
            pass
        print(f"raydream: trial {trial.trial_id} failed: {last or 'see its error.txt'}{then}", flush=True)
