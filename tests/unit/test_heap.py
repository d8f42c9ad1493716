"""heap.settle: garbage is collected, survivors are frozen out of later collections, and a
second settle (a reload) thaws them first, so what the reload dropped is freed."""

from __future__ import annotations

import gc
import weakref

from dcim.daemon import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_settle_collects_then_freezes_and_a_second_settle_frees_what_was_dropped() -> None:
    try:
        garbage = _Node()
        gone = weakref.ref(garbage)
        del garbage
        kept = _Node()
        heap.settle()
        assert gone() is None                  # garbage from before the load is collected
        assert gc.get_freeze_count() > 0       # survivors are out of later collections
        frozen_before = gc.get_freeze_count()
        dropped = weakref.ref(kept)
        del kept                               # a reload drops the previous site model
        gc.collect()
        assert dropped() is not None           # frozen: a full collection skips it
        heap.settle()
        assert dropped() is None               # thawed and collected by the next settle
        assert gc.get_freeze_count() < frozen_before + 10
    finally:
        gc.unfreeze()
