"""What a simulated site is made of: racks, devices and the plant, as plain frozen data."""

from __future__ import annotations

from dataclasses import dataclass, field

from dcim.points import Kind


@dataclass(frozen=True)
class SimRack:
    """A GPU rack: its cap, its steady load and the training job it belongs to."""

    id: str
    cap_kw: float
    base_kw: float
    job: int
    row: str
    hall: str
    # The tenant leasing the rack (an id of SimSite.tenants), None: unassigned.
    tenant: str | None = None


@dataclass(frozen=True)
class SimTenant:
    """A GPU-as-a-Service customer of the simulated hall and its contract."""

    id: str
    name: str
    contract_kw: float
    model: str
    price_per_kwh: float
    currency: str = "USD"
    overage_multiplier: float = 1.0
    minimum_ratio: float = 0.0
    timezone: str = "UTC"


@dataclass(frozen=True)
class SimDevice:
    """One served device; which physical quantity it measures follows from its kind and links."""

    id: str
    profile: str
    kind: Kind
    rack: str | None = None
    feed: str | None = None
    # cdu: racks whose heat it removes; ups: (rack, feed) pairs it carries
    serves: tuple[str, ...] = ()
    carries: tuple[tuple[str, str], ...] = ()
    # utility meter: its share of facility power; chiller: its share of the heat
    share: float = 0.0
    rated_w: float = 0.0
    # Modbus devices behind one gateway port share the gateway name and differ by unit id
    gateway: str | None = None
    unit: int = 1
    # nominal phase-to-neutral voltage where the device sits (LV PDUs, MV utility mains)
    nominal_v: float = 230.0


@dataclass(frozen=True)
class SimSite:
    """A simulated site: topology plus the constants of its physics."""

    name: str
    preset: str
    racks: tuple[SimRack, ...]
    devices: tuple[SimDevice, ...]
    tenants: tuple[SimTenant, ...] = ()
    rack_max_kw: float = 190.0
    pue_target: float = 1.25
    # lighting, controls, CRAH fans, offices: the small constant part of facility power
    misc_w: float = 0.0
    # chiller plant COP at the reference outdoor temperature, and how fast it falls
    cop_ref: float = 5.25
    cop_ref_c: float = 20.0
    cop_per_c: float = 0.1
    outdoor_mean_c: float = 20.0
    outdoor_swing_c: float = 5.0
    capture_ratio: float = 0.87
    frequency_hz: float = 50.0
    racks_by_id: dict[str, SimRack] = field(init=False, repr=False, compare=False)
    devices_by_id: dict[str, SimDevice] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "racks_by_id", {r.id: r for r in self.racks})
        object.__setattr__(self, "devices_by_id", {d.id: d for d in self.devices})

    def of_kind(self, kind: Kind) -> list[SimDevice]:
        """Devices of one kind, in site order."""
        return [d for d in self.devices if d.kind == kind]
