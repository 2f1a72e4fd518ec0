"""Objects that live as long as the process, kept out of the garbage collector's passes.

The CLI is a short process that builds many objects nothing frees before it exits: `import
mlflow` and its SQL store (some 250,000), or status and plan over thousands of models (a few
per manifest and registry row, none in a cycle). With the collector on, its generational
passes walk them again and again for no garbage (a third of MLflow's import, a sixth of
status at 10,000 x 3 models), and once more, in full, at exit. So collection is paused while
they are built, and what was built is frozen: later passes skip it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived() -> Iterator[None]:
    """Objects created in the block are kept for the life of the process: do not collect them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
