"""Training progress for whoever watches this process: the command line's progress bar.

Process-local and opt-in. With no watcher, training adds no callback and runs
exactly as before (the UI, the daemon, tests); `mnist-pipeline run` on a
terminal sets one around its run. No TensorFlow here: model/network.py's
ProgressForwarder turns Keras's callbacks into these calls.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Protocol


class TrainingWatcher(Protocol):
    """Receives training progress, on the training thread: what it does there, training waits for."""

    def epoch_started(self, epoch: int, epochs: int, steps_per_epoch: int) -> None: ...

    def batch_finished(self, steps_done: int, logs: Mapping[str, float]) -> None: ...

    def epoch_finished(self, epoch: int, logs: Mapping[str, float]) -> None: ...


_watcher: TrainingWatcher | None = None


def current_watcher() -> TrainingWatcher | None:
    return _watcher


@contextmanager
def watching_training(watcher: TrainingWatcher) -> Iterator[None]:
    """Send the progress of any training in this process to `watcher` while the block runs."""
    global _watcher
    previous, _watcher = _watcher, watcher
    try:
        yield
    finally:
        _watcher = previous
