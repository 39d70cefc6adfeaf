"""The trial's channel to its Train runs' controllers, used in-process (it is a plain class
that Ray runs as a threaded actor): a run that was aborted never takes a later run's events
or acknowledgements."""

import threading

from raydream.train.channel import RunLink


def test_events_and_acks_belong_to_one_run():
    link = RunLink()
    first = link.start_run()
    link.send(first, ("state", "RunningState"))
    assert link.pending(first) and link.next_event(first, 0.1) == ("state", "RunningState")
    assert link.next_event(first, 0.05) is None and not link.pending(first)

    # The first run's controller waits for the trial to copy its report's checkpoint...
    waiting = threading.Thread(target=link.wait_for_ack, args=(first,))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()
    # ...and is aborted; the next run starts: the stale wait ends, and what the old
    # controller still sends is dropped.
    second = link.start_run()
    waiting.join(2)
    assert not waiting.is_alive() and second != first
    link.send(first, ("state", "AbortedState"))
    link.ack(first)
    assert not link.pending(second) and link.next_event(second, 0.05) is None

    # An acknowledgement given before the controller asks for it is kept for that wait.
    link.ack(second)
    link.wait_for_ack(second)
    later = threading.Thread(target=link.wait_for_ack, args=(second,))
    later.start()
    later.join(0.2)
    assert later.is_alive()  # used up by the wait before
    link.ack(second)
    later.join(2)
    assert not later.is_alive()


def test_a_waiting_trial_wakes_at_the_event():
    link = RunLink()
    run = link.start_run()
    timer = threading.Timer(0.1, link.send, args=(run, ("report", {"epoch": 1}, None)))
    timer.start()
    assert link.next_event(run, 5.0) == ("report", {"epoch": 1}, None)


def test_a_run_ended_by_its_trial_stops_waiting_for_an_acknowledgement_and_is_heard_no_more():
    # A run in Ray Train's local mode waits at its report in the trial's own process; when the
    # trial stops it (ASHA, or the trial's end), the wait ends without an acknowledgement, so
    # the loop leaves (RunEnded) instead of training another epoch.
    link = RunLink()
    run = link.start_run()
    acked: list[bool] = []
    waiting = threading.Thread(target=lambda: acked.append(link.wait_for_ack(run)))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()
    link.end_run(run)
    waiting.join(2)
    assert not waiting.is_alive() and acked == [False]
    link.send(run, ("report", {"epoch": 2}, None))  # what it still sends is dropped
    assert not link.pending(run) and not link.wait_for_ack(run)
    # An acknowledged report is a True wait; ending an older run leaves the current one alone.
    later = link.start_run()
    link.end_run(run)
    link.ack(later)
    assert link.wait_for_ack(later)


def test_a_local_mode_run_goes_on_only_when_tune_asks_for_the_next_epoch(tmp_path):
    # A run with workers goes on once its checkpoint is copied (an abort stops it at once); a
    # run in local mode cannot be stopped inside an epoch, so copying its checkpoint does not
    # let it go on: a trial that ASHA stops next would train an epoch beside the next trial.
    from types import SimpleNamespace

    from raydream.train.trial import TrainRunTrial

    class Run:
        def __init__(self, local):
            self.local, self.acked = local, False

        def ack(self):
            self.acked = True

    for local in (True, False):
        trial = SimpleNamespace(_checkpoint=None, _run=Run(local))
        TrainRunTrial.save_checkpoint(trial, str(tmp_path))
        assert trial._run.acked is not local


def test_a_runs_stall_limit_counts_from_when_its_workers_are_placed(monkeypatch):
    # A retried trial may wait most of its limit for its workers' resources; its first epoch
    # then gets the whole limit, and a run that goes silent once placed still stalls.
    import queue
    import time

    import pytest

    from raydream.train import trial as trial_module

    class Method:
        def __init__(self, fn):
            self.remote = fn

    class Link:  # RunLink's calls as the trial makes them, answered in-process
        def __init__(self):
            self.events = queue.Queue()
            self.next_event = Method(self._next)
            self.pending = Method(lambda number: not self.events.empty())
            self.ack = Method(lambda number: None)

        def _next(self, number, timeout):
            try:
                return self.events.get(timeout=timeout)
            except queue.Empty:
                return None

    monkeypatch.setattr(trial_module.ray, "get", lambda value, **kwargs: value)
    monkeypatch.setattr(trial_module, "_POLL_S", 0.05)
    monkeypatch.setattr(trial_module, "SCHEDULING_GRACE_S", 0.0)
    fitting = threading.Event()  # the run's fit() thread, alive until the test ends
    run = trial_module.TrainRun.__new__(trial_module.TrainRun)
    link = Link()
    run.link, run.local, run._number, run.controller, run.state, run.error = link, False, 1, "controller", None, None
    run._unacked = run._stopping = False
    run._thread = threading.Thread(target=fitting.wait, daemon=True)
    run._thread.start()
    try:
        link.events.put(("state", "SchedulingState"))
        threading.Timer(0.6, link.events.put, args=(("state", "RunningState"),)).start()
        threading.Timer(1.2, link.events.put, args=(("report", {"epoch": 1}, None),)).start()
        started = time.monotonic()
        assert run.next_report(0.8) == ({"epoch": 1}, None)  # 1.2 s after it began waiting
        assert time.monotonic() - started >= 1.1 and run.state == "RunningState"
        started = time.monotonic()
        with pytest.raises(trial_module.TrialStalled, match="its Train workers were running"):
            run.next_report(0.5)
        assert 0.5 <= time.monotonic() - started < 1.5
    finally:
        fitting.set()
