"""The config the simulator writes (dcim/sim/siteconfig.py) is valid for every preset.

Rendered with every device on its protocol's default port and checked exactly as dcim checks
a config, so a new config rule (an id pattern, a cross-reference) cannot leave a preset behind.
"""

from __future__ import annotations

import pytest

from dcim.profile import ProfileRegistry
from dcim.sim import presets, siteconfig
from dcim.sim.agents import Endpoint
from dcim.site import DEFAULT_PORTS

REGISTRY = ProfileRegistry.load()


@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
def test_every_preset_writes_a_valid_config(preset: str) -> None:
    site = presets.build(preset, 1)
    endpoints = {d.id: Endpoint("127.0.0.1", DEFAULT_PORTS[REGISTRY[d.profile].protocol])
                 for d in site.devices}
    resolved = siteconfig.check(siteconfig.render(site, endpoints, REGISTRY), REGISTRY)
    assert len(resolved.devices) == len(site.devices)
    assert len(resolved.racks) == len(site.racks)
    assert resolved.warnings == ()
