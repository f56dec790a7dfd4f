"""Tasks for worker-pool tests, in a module of their own so that spawned workers import little."""

import os
import signal


def die(task):
    """Kill this worker for the task "die" (as a crash mid-write would); else echo the task."""
    if task == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return task.upper()
