"""Small performance helpers, each justified by a measurement in ``make bench``."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects.

    Validating a Kafka fetch allocates tens of thousands of pydantic models; each allocation burst
    triggers collections that scan the whole heap (the fetched records included). Measured on
    20k synthetic orders: 5k/s validated with the collector running, 48k/s with it paused. The
    objects are acyclic, so reference counting frees them; collection resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
