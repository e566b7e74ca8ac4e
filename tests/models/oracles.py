"""Importable oracle models for CLI tests (``--predict tests/models/oracles.py:bright``)."""

import numpy as np


def bright(images):
    """Batched: 1 where the mean pixel is above 127."""
    return [int(np.asarray(image).mean() > 127) for image in images]


def bright_one(image):
    """Single image: 1 where the mean pixel is above 127."""
    return int(np.asarray(image).mean() > 127)


def brightness_factory(log_dir: str, poison_flag: str | None = None):
    """A predict_factory: records each model load (one file per load, named by process id)
    and returns ``bright``, which raises on a coloured (not gray) image while ``poison_flag`` exists."""
    import os
    import uuid

    with open(os.path.join(log_dir, f"load-{os.getpid()}-{uuid.uuid4().hex[:8]}"), "w") as handle:
        handle.write("loaded")

    def predict(images):
        if poison_flag and os.path.exists(poison_flag) and any(
                np.any(np.asarray(i)[..., 0] != np.asarray(i)[..., 1]) for i in images):
            raise RuntimeError("model crashed on a coloured image")
        return bright(images)

    return predict


def bright_refuses_dark(images):
    """Batched ``bright`` that raises on any image darker than 30 (a model that sometimes fails)."""
    if any(np.asarray(image).mean() < 30 for image in images):
        raise RuntimeError("too dark to see")
    return bright(images)


def misaligned(images):
    """A model with a bug of its own: raises the ValueError numpy would."""
    raise ValueError("shapes (3,) and (4,) not aligned: 3 (dim 0) != 4 (dim 0)")


_CALLS = [0]


def slow_bright(images):
    """``bright`` that announces each batch on stdout and takes a moment (for Ctrl-C tests). With
    ORACLE_BLOCK_AFTER=N and ORACLE_RELEASE=path in the environment, calls from the Nth on wait
    until that file exists (the test makes it once its signal is sent), so a Ctrl-C always lands
    mid-job, however busy the machine. (Predict may run off the main thread: it cannot see the signal.)"""
    import os
    import time

    print("PREDICT", flush=True)
    _CALLS[0] += 1
    release = os.environ.get("ORACLE_RELEASE")
    if release and _CALLS[0] >= int(os.environ.get("ORACLE_BLOCK_AFTER", "1")):
        deadline = time.monotonic() + 120
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(0.02)
    return bright(images)


_CACHE_LOCK = __import__("threading").Lock()  # what a real model cache holds: cannot be pickled


def locked_bright(images):
    """``bright`` behind a module-level lock, as a model loaded once per process would be."""
    with _CACHE_LOCK:
        return bright(images)
