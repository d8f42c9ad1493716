"""The simulated sites: `tiny` for tests, `hall-18mw` for the demo, `bench-2000` for benchmarks."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from dcim.points import Kind
from dcim.sim import signals
from dcim.sim.topology import SimDevice, SimRack, SimSite, SimTenant

# The shipped rack PDU profiles; larger presets mix them rack by rack.
PDU_PROFILES = ("apc-rpdu2", "raritan-px", "servertech-sentry4", "vertiv-v5", "eaton-epdu")
METER_PROFILES = ("schneider-pm5500", "sunspec-meter")
UPS_PROFILE = "ups-mib"
CDU_PROFILE = "generic-cdu"
SHELF_PROFILE = "redfish-power-shelf"
REDFISH_CDU_PROFILE = "redfish-cdu"
SHELVES_PER_FEED = 4  # NVL72: eight ~33 kW shelves per rack, four on each feed
CHILLER_PROFILE = "generic-chiller"
MV_PHASE_V = 11_000 / math.sqrt(3)  # utility mains of a large hall are metered at 11 kV


def _rack(seed: int, rack_id: str, job: int, row: str, hall: str) -> SimRack:
    # GB300-class steady training load: 120-140 kW, bursts toward the 190 kW cap
    base = 120.0 + 20.0 * signals.uniform(seed, signals.key_of(rack_id), 0, 3)
    return SimRack(id=rack_id, cap_kw=190.0, base_kw=round(base, 1), job=job, row=row, hall=hall)


def _pdus(rack: SimRack, profile: str) -> list[SimDevice]:
    return [SimDevice(id=f"{rack.id}-pdu-{f.lower()}", profile=profile, kind=Kind.PDU,
                      rack=rack.id, feed=f) for f in ("A", "B")]


def _shelves(rack: SimRack) -> list[SimDevice]:
    """An NVL72-class rack's power shelves, all served by the rack's one Redfish service."""
    return [SimDevice(id=f"{rack.id}-shelf-{n}", profile=SHELF_PROFILE, kind=Kind.SHELF,
                      rack=rack.id, feed="A" if n <= SHELVES_PER_FEED else "B",
                      gateway=f"{rack.id}-rmc", unit=n)
            for n in range(1, 2 * SHELVES_PER_FEED + 1)]


def _ups_rating_w(racks: list[SimRack]) -> float:
    # sized so one side of a 2N pair stays below ~85 % when it carries the whole load
    design = sum(r.base_kw for r in racks) * 1000.0
    return math.ceil(design / 0.85 / 100_000.0) * 100_000.0


def _split(items: list[SimRack], sizes: list[int]) -> list[list[SimRack]]:
    out, i = [], 0
    for n in sizes:
        out.append(items[i:i + n])
        i += n
    return out


def tiny(seed: int) -> SimSite:
    """Two racks with A/B PDUs (four PDU vendors), one CDU, one utility meter, one UPS; r01 is
    leased to one tenant (TINY_TENANTS), r02 is unassigned."""
    racks = [_rack(seed, "r01", 0, "a", "h1"), _rack(seed, "r02", 1, "a", "h1")]
    vendors = ("apc-rpdu2", "raritan-px", "servertech-sentry4", "eaton-epdu")
    devices = []
    for i, (rack, feed) in enumerate((r, f) for r in racks for f in ("A", "B")):
        devices.append(SimDevice(id=f"{rack.id}-pdu-{feed.lower()}", profile=vendors[i],
                                 kind=Kind.PDU, rack=rack.id, feed=feed))
    devices += [
        SimDevice(id="cdu-1", profile=CDU_PROFILE, kind=Kind.CDU, serves=("r01", "r02")),
        SimDevice(id="main-1", profile=METER_PROFILES[0], kind=Kind.METER, share=1.0),
        SimDevice(id="ups-1", profile=UPS_PROFILE, kind=Kind.UPS, rated_w=500_000.0,
                  carries=tuple((r.id, f) for r in racks for f in ("A", "B"))),
    ]
    return lease(SimSite(name="sim-tiny", preset="tiny", racks=tuple(racks),
                         devices=tuple(devices), misc_w=2_000.0), TINY_TENANTS)


def _row_name(index: int) -> str:
    """a .. z, then aa, ab ... (rows are ids: letters only, never past 'z' into punctuation)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("a") + rest) + name
    return name


def _hall(seed: int, *, name: str, preset: str, n_racks: int, cdu_sizes: list[int],
          ups_per_feed: int, chillers: int, chiller_gateway_size: int, mains: int,
          cdu_gateway_size: int, misc_w: float, rows: int, shelf_racks: int = 0,
          redfish_cdus: int = 0) -> SimSite:
    per_row = math.ceil(n_racks / rows)
    racks = [_rack(seed, f"r{i + 1:03d}" if n_racks > 99 else f"r{i + 1:02d}", i // 10,
                   _row_name(i // per_row), "h1") for i in range(n_racks)]
    devices: list[SimDevice] = []
    for i, rack in enumerate(racks):
        if i >= n_racks - shelf_racks:  # the last racks take their power through shelves
            devices += _shelves(rack)
        else:
            devices += _pdus(rack, PDU_PROFILES[(i // 4) % len(PDU_PROFILES)])
    assert sum(cdu_sizes) == n_racks
    width = len(str(len(cdu_sizes)))
    for i, group in enumerate(_split(racks, cdu_sizes)):
        gw = f"cdu-gw-{i // cdu_gateway_size + 1}" if cdu_gateway_size > 1 else None
        redfish = i >= len(cdu_sizes) - redfish_cdus
        devices.append(SimDevice(
            id=f"cdu-{i + 1:0{width}d}", profile=REDFISH_CDU_PROFILE if redfish else CDU_PROFILE,
            kind=Kind.CDU,
            serves=tuple(r.id for r in group), gateway=gw,
            unit=(i % cdu_gateway_size) + 1 if gw else 1,
        ))
    per_ups = math.ceil(n_racks / ups_per_feed)
    for feed in ("A", "B"):
        for j in range(ups_per_feed):
            group = racks[j * per_ups:(j + 1) * per_ups]
            devices.append(SimDevice(
                id=f"ups-{feed.lower()}{j + 1}", profile=UPS_PROFILE, kind=Kind.UPS,
                carries=tuple((r.id, feed) for r in group), rated_w=_ups_rating_w(group),
            ))
    design_heat_w = sum(r.base_kw for r in racks) * 1000.0 * 1.05
    for j in range(chillers):
        # N+1: any N chillers can reject the design heat
        rated = math.ceil(design_heat_w / max(1, chillers - 1) / 100_000.0) * 100_000.0
        devices.append(SimDevice(
            id=f"chiller-{j + 1}", profile=CHILLER_PROFILE, kind=Kind.CHILLER, share=1.0 / chillers,
            rated_w=rated, gateway=f"chiller-gw-{j // chiller_gateway_size + 1}",
            unit=j % chiller_gateway_size + 1,
        ))
    # the mains share the site unevenly, as real incomers do
    weights = [1.0 + 0.06 * signals.signed(seed, 11, j) for j in range(mains)]
    for j in range(mains):
        devices.append(SimDevice(
            id=f"main-{j + 1}", profile=METER_PROFILES[j % len(METER_PROFILES)], kind=Kind.METER,
            share=weights[j] / sum(weights), nominal_v=MV_PHASE_V,
        ))
    return SimSite(name=name, preset=preset, racks=tuple(racks), devices=tuple(devices),
                   misc_w=misc_w)


# hall-18mw's tenants (docs/tenants.md): one of each billing model, and the racks each leases
# (r61-r76 stay unassigned). Contracts sit near the racks' load, so acme runs into overage.
HALL_TENANTS = (
    (SimTenant(id="acme", name="Acme AI", contract_kw=3000, model="committed",
               price_per_kwh=0.085, overage_multiplier=1.5, minimum_ratio=0.5,
               timezone="America/Los_Angeles"), 24),
    (SimTenant(id="borealis", name="Borealis Labs", contract_kw=3500, model="metered",
               price_per_kwh=0.095, minimum_ratio=0.45, timezone="America/Los_Angeles"), 24),
    (SimTenant(id="cobalt", name="Cobalt Compute", contract_kw=1800, model="pue_multiplier",
               price_per_kwh=0.07, overage_multiplier=2.0, timezone="America/Los_Angeles"), 12),
)


# tiny leases r01 to one tenant and leaves r02 unassigned: the tenant series and dashboard
# have data in the tests that run on it.
TINY_TENANTS = (
    (SimTenant(id="acme", name="Acme AI", contract_kw=150, model="committed",
               price_per_kwh=0.085, overage_multiplier=1.5, minimum_ratio=0.5,
               timezone="UTC"), 1),
)


def lease(site: SimSite, tenants: tuple[tuple[SimTenant, int], ...]) -> SimSite:
    """The site with its first racks leased to the tenants in order, so many racks each."""
    owner: dict[str, str] = {}
    i = 0
    for tenant, n in tenants:
        for rack in site.racks[i:i + n]:
            owner[rack.id] = tenant.id
        i += n
    racks = tuple(dataclasses.replace(r, tenant=owner.get(r.id)) for r in site.racks)
    return dataclasses.replace(site, racks=racks, tenants=tuple(t for t, _ in tenants))


def hall_18mw(seed: int) -> SimSite:
    """An 18 MW hall: 76 GB300-class racks, 12 CDUs, 8 UPSes (2N), 5 chillers, 2 utility mains.

    The last 4 racks are NVL72-class with 8 power shelves each on a Redfish service per rack,
    and the last CDU speaks Redfish; the rest is SNMP PDUs and Modbus. Racks r01-r60 are leased
    to three tenants (HALL_TENANTS), r61-r76 are unassigned.
    """
    return lease(_hall(seed, name="sim-hall-18mw", preset="hall-18mw", n_racks=76,
                 cdu_sizes=[6] * 10 + [8] * 2, ups_per_feed=4, chillers=5,
                 chiller_gateway_size=5, mains=2, cdu_gateway_size=1, misc_w=100_000.0, rows=4,
                 shelf_racks=4, redfish_cdus=1), HALL_TENANTS)


def bench_2000(seed: int) -> SimSite:
    """2,000 devices: 900 racks (1,800 PDUs), 150 CDUs, 30 UPSes, 16 chillers, 4 mains."""
    return _hall(seed, name="sim-bench-2000", preset="bench-2000", n_racks=900,
                 cdu_sizes=[6] * 150, ups_per_feed=15, chillers=16, chiller_gateway_size=8,
                 mains=4, cdu_gateway_size=10, misc_w=900_000.0, rows=30)


PRESETS: dict[str, Callable[[int], SimSite]] = {
    "tiny": tiny,
    "hall-18mw": hall_18mw,
    "bench-2000": bench_2000,
}


def build(preset: str, seed: int) -> SimSite:
    """The named preset's site for a seed; KeyError names the known presets."""
    if preset not in PRESETS:
        raise KeyError(f"unknown preset '{preset}'; known: {', '.join(PRESETS)}")
    return PRESETS[preset](seed)
