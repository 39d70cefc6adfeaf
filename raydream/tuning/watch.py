"""Bounds on a running search, and what the console says of it, as Tune callbacks: trials
that cannot start, failed trials said in one line, and (`events`) one line per trial event in
place of Tune's status tables (the search layer; Ray is imported only when a watch is made)."""

from __future__ import annotations

import time
from pathlib import Path

from raydream.core.console import CONSOLE_WIDTH, say
from raydream.results.table import METRIC_LABELS, short_names
from raydream.tuning.plan import ResourcePlan, Search

# The watch of the search running in this process. A search's callbacks and stopper are
# pickled into its experiment (tuner.pkl); they unpickle as this process's watch, so that a
# resumed search reports to the watch it made. (They must be defined in an imported module:
# cloudpickle copies what `python -m raydream.tune` defines, its `__main__`, by value.)
_ACTIVE_WATCH: dict[str, "SearchStallWatch"] = {}

# How long a search past its time budget waits for a trial to save the checkpoint it has
# reported (a function trainable has already written it; the save hands Tune its path).
SAVE_GRACE_S = 30.0


def _active_watch_part(part: str):
    """The running search's callback or stopper; outside a search (Ray's ExperimentAnalysis
    reading the experiment, say), one that does nothing."""
    if "watch" in _ACTIVE_WATCH:
        return getattr(_ACTIVE_WATCH["watch"], part)
    from ray.tune import Callback
    from ray.tune.stopper import NoopStopper

    return Callback() if part == "callback" else NoopStopper()


class SearchStallWatch:
    """Bounds the wait for trials to start, and says each trial failure in one line.

    If trials are pending and none has run for `limit_s` seconds (their resources are held
    by something else: another search, or a cluster too small for them), the stopper ends
    the search and `reason` says what the trials waited for. Once `budget_s` seconds have
    passed since the watch was made, the stopper ends the search too (`out_of_time`). A
    trial that fails is printed as one message (Tune's traceback goes to the trial's
    error.txt, and to the console with -v). With `events` (the default verbosity), each
    trial's start, epochs and end are said in a line each, as `search` defines them (its
    metric and epoch budget).
    """

    def __init__(self, limit_s: float, plan: ResourcePlan, search: Search | None = None, events: bool = False,
                 budget_s: float | None = None) -> None:
        from ray.tune import Callback
        from ray.tune.stopper import Stopper

        watch = self
        self.limit_s, self.plan, self.search, self.events = limit_s, plan, search, events and search is not None
        self.budget_s = budget_s
        self.reason: str | None = None
        self._waiting_since: float | None = None
        self._trials: list = []  # Tune's own list of the search's trials, seen at each step
        self._started = time.monotonic()
        self._best: dict[str, float] = {}
        _ACTIVE_WATCH["watch"] = self

        class _Callback(Callback):
            def on_step_begin(self, iteration, trials, **info):
                watch._observe(trials)

            def on_trial_start(self, iteration, trials, trial, **info):
                if watch.events:
                    watch._say(trial, f"started: {watch._params(trial.config)}")

            def on_trial_result(self, iteration, trials, trial, result, **info):
                if watch.events:
                    watch._result(trial, result)

            def on_trial_complete(self, iteration, trials, trial, **info):
                if watch.events:
                    watch._complete(trial)

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
                return watch.reason is not None or watch.out_of_time()

            def __reduce__(self):
                return _active_watch_part, ("stopper",)

        self.callback, self.stopper = _Callback(), _Stopper()

    def out_of_time(self) -> bool:
        """Whether the time budget is spent, once no trial is saving a checkpoint it reported.

        Tune saves a reported checkpoint in a task of its own after taking the report's
        metrics, and stopping the experiment drops that task: a trial whose report came just
        before the budget ran out would rank by its score but have no checkpoint (Tune's own
        `time_budget_s` does that). A save is waited for at most SAVE_GRACE_S seconds.
        """
        if self.budget_s is None:
            return False
        over = time.monotonic() - self._started - self.budget_s
        return over >= 0 and (over >= SAVE_GRACE_S or not any(t.is_saving for t in self._trials))

    def _observe(self, trials) -> None:
        self._trials = trials
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

    def _say(self, trial, text: str) -> None:
        line = f"raydream: trial {trial.trial_id} {text}"
        print(line if len(line) <= CONSOLE_WIDTH else line[: CONSOLE_WIDTH - 3] + "...", flush=True)

    def _params(self, config: dict) -> str:
        """The trial's sampled values, as the ranked table names them."""
        resolved = self.search.space.resolve(config)
        keys = self.search.space.sampled_keys()
        shown = []
        for key, name in short_names(keys).items():
            value = resolved
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                shown.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
        return ", ".join(shown) if shown else "(the space's constants)"

    def _result(self, trial, result: dict) -> None:
        metric, label = self.search.metric, METRIC_LABELS[self.search.metric]
        value = result.get(metric)
        if "epoch" not in result or value is None:
            return
        best = self._best.get(trial.trial_id)
        if best is None or (value > best if self.search.mode == "max" else value < best):
            best = self._best[trial.trial_id] = value
        self._say(trial, f"epoch {result['epoch']}: val {label} {value:.4f} (best {best:.4f})")

    def _complete(self, trial) -> None:
        epoch = (trial.last_result or {}).get("epoch", 0)
        best = self._best.get(trial.trial_id)
        scored = f", best val {METRIC_LABELS[self.search.metric]} {best:.4f}" if best is not None else ""
        if epoch >= self.search.max_epochs:
            self._say(trial, f"completed {epoch} epoch(s){scored}")
        elif self.budget_s is not None and time.monotonic() - self._started >= self.budget_s:
            self._say(trial, f"stopped at epoch {epoch} by the time budget{scored}")
        elif self.reason is not None:
            self._say(trial, f"stopped at epoch {epoch} with the search{scored}")
        else:
            self._say(trial, f"stopped early by ASHA at epoch {epoch}{scored}")

    @staticmethod
    def _trial_failed(trial, then: str) -> None:
        last = ""
        try:
            if trial.error_file:
                last = Path(trial.error_file).read_text().strip().splitlines()[-1]
        except (OSError, IndexError):
            pass
        say(f"trial {trial.trial_id} failed: {last or 'see its error.txt'}{then}")
