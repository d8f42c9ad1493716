"""Live PUE: facility power over IT power, published only from complete, fresh inputs."""

from __future__ import annotations

from dcim.compute.fresh import Inputs
from dcim.compute.snapshot import PueResult, PueStatus
from dcim.site import PueSpec


def live_pue(spec: PueSpec | None, inputs: Inputs, target: float | None) -> PueResult:
    """PUE with its coverage; withheld (value None) when any input is missing or stale."""
    if spec is None:
        return PueResult(None, "unavailable", 0.0, None, None, (), target,
                         "no pue section in the site config")
    facility_w, facility_missing = inputs.total(spec.facility)
    it_w, it_missing = inputs.total(spec.it)
    needed = spec.devices  # this shard's inputs: restrict_to_shard leaves the remote ones out
    missing = tuple(dict.fromkeys([*facility_missing, *it_missing]))
    coverage = (len(needed) - len(missing)) / len(needed) if needed else 0.0
    if spec.remote:
        # Sharded: this instance holds only part of the inputs. Its local sums are published
        # for the recording rules that compute campus PUE; a PUE from a part would be wrong.
        return PueResult(None, "unavailable", coverage, facility_w, it_w, missing, target,
                         f"{len(spec.remote)} PUE inputs are polled by other shards; campus "
                         "PUE comes from the Prometheus recording rules")
    if missing:
        status: PueStatus = "unavailable" if coverage == 0 else "degraded"
        return PueResult(None, status, coverage, facility_w, it_w, missing, target,
                         f"{len(missing)} of {len(needed)} input devices missing or stale")
    assert facility_w is not None and it_w is not None
    if it_w <= 0:
        return PueResult(None, "degraded", coverage, facility_w, it_w, (), target,
                         "IT power is zero")
    if facility_w < it_w:
        # Physically impossible: a meter is misplaced or misread; a number would mislead.
        return PueResult(None, "degraded", coverage, facility_w, it_w, (), target,
                         "facility power below IT power (check meter placement)")
    return PueResult(facility_w / it_w, "ok", 1.0, facility_w, it_w, (), target)
