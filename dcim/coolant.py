"""Coolant properties for heat = flow x density x specific heat x delta-T, and the named coolants.

A plain dataclass so the compute core and the simulator share the numbers without importing
the config layer (which only validates the names and the `{density_kg_m3, cp_kj_kg_k}` form).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Coolant:
    """Density and specific heat of a coolant at its operating temperature."""

    density_kg_m3: float
    cp_kj_kg_k: float


# PG25 (25 % propylene glycol) near 35 C, the usual secondary loop of GB300-class racks.
COOLANTS = {
    "pg25": Coolant(density_kg_m3=1017.0, cp_kj_kg_k=3.95),
    "water": Coolant(density_kg_m3=994.0, cp_kj_kg_k=4.18),
}
# What a CDU that names no coolant carries.
DEFAULT_COOLANT = "pg25"
