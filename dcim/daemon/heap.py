"""Keeping Python's cyclic garbage collector off the tick path.

A full (generation 2) collection walks every object the process tracks. Most of them are the
site model, the profiles and the imported modules, which live as long as the config: at 2,000
devices such a collection inside a compute tick took it from ~28 ms to ~75-85 ms of CPU
(bench/compute_scale.py). Frozen objects are skipped by every collection, so after a load the
long-lived heap is frozen; before a reload it is thawed and collected once, so the previous
site model is freed rather than kept frozen for good.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect once, then freeze what survived (the config's objects) out of future collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
