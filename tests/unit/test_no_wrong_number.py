"""Properties over decode + compute: a faulty reading never reaches a published number.

A site of shipped profiles (a SunSpec meter and a UPS-MIB UPS as facility power, a Raritan PDU
as the one rack's IT power) is read from wire data generated from a known truth. Hypothesis
then breaks any of the devices the way agents in the field do (sentinels, negative rows, scale
factors and decimal digits no device uses, power ten times off, zero power under load, units
off by 10 or 100). Whatever it picks, PUE and the rack total are either the truth or withheld,
never another number. Energy counters that glitch or jump never move the ledger by more than
the device's power could deliver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support.profiles import shipped_registry

from dcim.compute import compute
from dcim.compute.energy import JUMP_MARGIN, WH, DeviceEnergy, observe
from dcim.config import parse_config
from dcim.decode import ModbusData, SnmpData, decode_modbus, decode_snmp
from dcim.profile import ModbusProfile, SnmpProfile
from dcim.readings import PollResult
from dcim.site import Site, build_site
from dcim.state import DeviceState

NOW = 1_800_000_000.0
REGISTRY = shipped_registry()
SITE: Site = build_site(parse_config({
    "site": {"name": "t", "rack_max_kw": 190},
    "racks": [{"id": "r1", "cap_kw": 190}],
    "devices": [
        {"id": "main", "profile": "sunspec-meter", "host": "127.0.0.1", "port": 502},
        {"id": "ups", "profile": "ups-mib", "host": "127.0.0.1"},
        {"id": "pdu", "profile": "raritan-px", "host": "127.0.0.1", "rack": "r1", "feed": "A"},
    ],
    "pue": {"facility": ["main", "ups"], "it": "racks"},
}), REGISTRY)

PDU_FAULTS = ["none", "power_tenfold", "power_tenth", "zero_power", "decimals_overflow",
              "decimals_underflow", "decimals_min", "negative_pole_current", "voltage_tenfold"]
METER_FAULTS = ["none", "sf_overflow", "sf_underflow", "power_tenfold", "zero_power",
                "negative_power", "sentinel"]
UPS_FAULTS = ["none", "sentinel_16", "sentinel_32", "negative_row", "zero_input",
              "voltage_tenfold", "current_hundredfold", "zero_output", "zero_both",
              "input_tenfold"]

phase_amps = st.integers(min_value=5, max_value=60)
power_factor = st.floats(min_value=0.85, max_value=1.0)


@dataclass(frozen=True)
class Truth:
    """What the devices really measure."""

    meter_w: float
    ups_in_w: float
    pdu_w: float


# --- wire data of each device, from the truth and a fault --------------------------------------

RARITAN = "1.3.6.1.4.1.13742.6."
INLET, INLET_DIGITS = RARITAN + "5.2.3.1.4", RARITAN + "3.3.4.1.7"
POLE, POLE_DIGITS = RARITAN + "5.2.4.1.4", RARITAN + "3.3.6.1.7"


def pdu_data(amps: list[int], pf: float, fault: str) -> tuple[SnmpData, float]:
    volts = 230
    watts = int(sum(a * volts for a in amps) * pf)
    power, digits, pole_amps, pole_volts = watts, 0, [a * 1000 for a in amps], [volts] * 3
    match fault:
        case "power_tenfold":
            power = watts * 10
        case "power_tenth":
            power, digits = watts, 1  # one decimal digit too many: a tenth of the power
        case "zero_power":
            power = 0
        case "decimals_overflow":
            digits = 400
        case "decimals_underflow":
            digits = -400
        case "decimals_min":
            digits = -2**31
        case "negative_pole_current":
            pole_amps[1] = -pole_amps[1]
        case "voltage_tenfold":
            pole_volts = [v * 10 for v in pole_volts]
    data = SnmpData(tables={
        INLET: {"1.1.5": power}, INLET_DIGITS: {"1.1.5": digits},
        POLE: {**{f"1.1.{p}.1": pole_amps[p - 1] for p in (1, 2, 3)},
               **{f"1.1.{p}.4": pole_volts[p - 1] for p in (1, 2, 3)}},
        POLE_DIGITS: {**{f"1.1.{p}.1": 3 for p in (1, 2, 3)},
                      **{f"1.1.{p}.4": 0 for p in (1, 2, 3)}},
    })
    return data, float(watts)


def meter_data(amps: list[int], pf: float, fault: str) -> tuple[ModbusData, float]:
    volts_raw = 2300  # V_SF -1: 230.0 V
    w_raw = int(sum(a * 230 for a in amps) * pf / 100)  # W_SF 2
    sf = 2
    match fault:
        case "sf_overflow":
            sf = 400
        case "sf_underflow":
            sf = -400
        case "power_tenfold":
            sf = 3
        case "zero_power":
            w_raw = 0
        case "negative_power":
            w_raw = -w_raw
        case "sentinel":
            w_raw = -32768
    regs: dict[tuple[str, int], int] = {}
    for i, a in enumerate(amps):
        regs[("holding", 40073 + i)] = a
        regs[("holding", 40078 + i)] = volts_raw
    regs.update({("holding", 40076): 0, ("holding", 40085): 0xFFFF, ("holding", 40086): 5000,
                 ("holding", 40087): 0xFFFE, ("holding", 40088): w_raw & 0xFFFF,
                 ("holding", 40092): sf & 0xFFFF, ("holding", 40093): 0x8000,
                 ("holding", 40097): 0x8000, ("holding", 40116): 0, ("holding", 40117): 1000,
                 ("holding", 40124): 0})
    return ModbusData(registers=dict(regs)), float(w_raw * 100)


UPS = "1.3.6.1.2.1.33.1."


def ups_data(amps: list[int], pf: float, fault: str) -> tuple[SnmpData, float]:
    volts = [230, 230, 230]
    out_w = [int(a * 230 * pf) for a in amps]
    in_w = [int(w * 1.05) for w in out_w]
    deci_amps = [a * 10 for a in amps]
    true_in = float(sum(in_w))
    match fault:
        case "sentinel_16":
            in_w[0] = 65535
        case "sentinel_32":
            in_w[2] = 4294967295
        case "negative_row":
            in_w[1] = -26
        case "zero_input":
            in_w = [0, 0, 0]
        case "voltage_tenfold":
            volts = [v * 10 for v in volts]
        case "current_hundredfold":
            deci_amps = [a * 100 for a in amps]
        case "zero_output":
            out_w = [0, 0, 0]
        case "zero_both":
            in_w, out_w = [0, 0, 0], [0, 0, 0]
        case "input_tenfold":
            in_w = [w * 10 for w in in_w]
    data = SnmpData(
        scalars={UPS + "4.1.0": 3, UPS + "2.1.0": 2, UPS + "2.3.0": 30, UPS + "2.4.0": 100,
                 UPS + "4.2.0": 500},
        tables={UPS + "3.3.1.5": {str(i + 1): w for i, w in enumerate(in_w)},
                UPS + "4.4.1.2": {str(i + 1): v for i, v in enumerate(volts)},
                UPS + "4.4.1.3": {str(i + 1): a for i, a in enumerate(deci_amps)},
                UPS + "4.4.1.4": {str(i + 1): w for i, w in enumerate(out_w)},
                UPS + "4.4.1.5": {"1": 40, "2": 40, "3": 40}})
    return data, true_in


def _result(device: str, values: Any, errors: Any) -> DeviceState:
    return DeviceState(PollResult(device=device, time=NOW - 1, duration=0.1, values=values,
                                  errors=errors), NOW - 1)


@settings(max_examples=300, deadline=None)
@given(pdu_amps=st.lists(phase_amps, min_size=3, max_size=3),
       meter_amps=st.lists(st.integers(min_value=100, max_value=1000), min_size=3, max_size=3),
       ups_amps=st.lists(phase_amps, min_size=3, max_size=3), pf=power_factor,
       pdu_fault=st.sampled_from(PDU_FAULTS), meter_fault=st.sampled_from(METER_FAULTS),
       ups_fault=st.sampled_from(UPS_FAULTS))
def test_pue_and_rack_power_are_the_truth_or_withheld(
        pdu_amps: list[int], meter_amps: list[int], ups_amps: list[int], pf: float,
        pdu_fault: str, meter_fault: str, ups_fault: str) -> None:
    pdu_profile, meter_profile, ups_profile = (REGISTRY["raritan-px"], REGISTRY["sunspec-meter"],
                                               REGISTRY["ups-mib"])
    assert isinstance(pdu_profile, SnmpProfile) and isinstance(ups_profile, SnmpProfile)
    assert isinstance(meter_profile, ModbusProfile)
    pdu_raw, pdu_w = pdu_data(pdu_amps, pf, pdu_fault)
    meter_raw, meter_w = meter_data(meter_amps, pf, meter_fault)
    ups_raw, ups_in_w = ups_data(ups_amps, pf, ups_fault)
    truth = Truth(meter_w, ups_in_w, pdu_w)
    decoded = {
        "pdu": decode_snmp(pdu_profile, pdu_raw, rack_cap_w=190_000.0),
        "main": decode_modbus(meter_profile, meter_raw),
        "ups": decode_snmp(ups_profile, ups_raw),
    }
    state = {d: _result(d, out.values, out.errors) for d, out in decoded.items()}
    snapshot = compute(SITE, state, NOW)

    rack = snapshot.racks["r1"].power_w
    assert rack is None or abs(rack - truth.pdu_w) <= 1e-6 * truth.pdu_w, (rack, truth)
    pue = snapshot.pue.value
    if pue is not None:
        expected = (truth.meter_w + truth.ups_in_w) / truth.pdu_w
        assert abs(pue - expected) <= 1e-6 * expected, (pue, expected, truth)
    # The faults the checks exist for are never silent: the affected total is withheld.
    if pdu_fault not in ("none", "negative_pole_current", "voltage_tenfold"):
        assert rack is None and pue is None
    if meter_fault != "none" or ups_fault in ("sentinel_16", "sentinel_32", "negative_row",
                                              "zero_input", "zero_both", "input_tenfold",
                                              "current_hundredfold"):
        assert pue is None
    for name, out in decoded.items():
        assert all(e.message for e in out.errors.values()), (name, out.errors)


# --- energy counters ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(watts=st.floats(min_value=10, max_value=2e6), polls=st.integers(min_value=3, max_value=30),
       lifetime_wh=st.floats(min_value=0, max_value=1e9),
       faults=st.lists(st.tuples(st.integers(min_value=1, max_value=29),
                                 st.sampled_from(["zero", "jump", "drop_and_back"])),
                       max_size=3))
def test_energy_ledger_never_moves_more_than_power_delivers(
        watts: float, polls: int, lifetime_wh: float, faults: list[tuple[int, str]]) -> None:
    device = SITE.devices["main"]
    faulty = {i: f for i, f in faults if i < polls}
    state = DeviceEnergy()
    counter = lifetime_wh
    for i in range(polls):
        counter += watts * 10 / 3600
        shown = counter
        match faulty.get(i):
            case "zero":
                shown = 0.0
            case "jump":
                shown = counter + 1e9
            case "drop_and_back":
                shown = counter / 2
        result = PollResult(device="main", time=NOW + 10 * i, duration=0.1,
                            values={"power_w": watts, "energy_wh": shown})
        before = state.total_j
        state, inc = observe(device, "facility", state, result)
        assert state.total_j >= before  # never backwards
        if inc is not None:
            assert inc.joules >= 0
    elapsed_h = 10 * (polls - 1) / 3600
    # Two counter steps of slack per refused reading at most (the re-baselined ones).
    bound = (JUMP_MARGIN * watts * elapsed_h + 3.0 * (len(faulty) + 1)) * WH
    assert state.total_j <= bound, (state, faulty)
