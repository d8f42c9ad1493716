"""build_site: a validated config resolved section by section into a Site, every fault listed.

The config layer (dcim.config) checks each value and leaves out what fails; the section
modules here check what spans entries (references, duplicates, limits) on what remains, so one
run reports every fault, each once.
"""

from __future__ import annotations

from pathlib import Path

from dcim.config import Config, ValidatedConfig, load_config_file
from dcim.errors import ConfigError
from dcim.profile import ProfileRegistry
from dcim.site.credentials import check_credentials
from dcim.site.devices import Identify, check_polling, resolve_devices
from dcim.site.model import Site
from dcim.site.outputs import resolve_outputs
from dcim.site.pue import resolve_pue
from dcim.site.racks import check_racks, rack_specs
from dcim.site.tenants import resolve_tenants


def build_site(config: Config | ValidatedConfig, registry: ProfileRegistry,
               identify: Identify | None = None) -> Site:
    """Resolve a config against the profile registry; raise ConfigError listing every fault.

    Given a ValidatedConfig, its errors come first and the checks skip what it left out.
    `identify` asks `profile: auto` devices who they are (dcim.drivers.identify.identify_all).
    """
    validated = config if isinstance(config, ValidatedConfig) else ValidatedConfig(config)
    config, invalid = validated.config, validated.invalid
    errors = list(validated.errors)
    warnings: list[str] = []
    max_kw = config.site.rack_max_kw

    errors += check_credentials(config.credentials)
    errors += check_racks(config.racks, max_kw, invalid)
    tenants = resolve_tenants(config.tenants, config.racks, invalid, errors, warnings)
    errors += check_polling(config.polling, invalid)
    # Every device id written, resolved or not: a reference to one that failed is not unknown.
    declared = {d.id for d in config.devices}
    devices, feeds = resolve_devices(config, registry, declared, invalid, errors, warnings,
                                     identify)
    racks = rack_specs(config.racks, feeds, max_kw)
    pue = None
    if config.pue is not None:
        pue = resolve_pue(config.pue, devices, declared, racks, invalid, errors)
    sinks, sources = resolve_outputs(config, devices, declared, invalid, errors, warnings)

    if errors:
        raise ConfigError(errors, warnings)
    return Site(
        name=config.site.name, rack_max_w=max_kw * 1000, pue_target=config.site.pue_target,
        racks=racks, devices=devices, pue=pue, sinks=sinks, sources=sources, tenants=tenants,
        max_in_flight=config.polling.max_in_flight, state_dir=config.state_dir,
        warnings=tuple(warnings),
    )


def load_site(path: Path, registry: ProfileRegistry | None = None,
              identify: Identify | None = None) -> Site:
    """Load, validate and resolve a site config file against the profiles."""
    validated = load_config_file(path)
    if registry is None:
        base = path.parent
        try:
            registry = ProfileRegistry.load(base / d for d in validated.config.profile_dirs)
        except ConfigError as exc:
            raise ConfigError([*validated.errors, *exc.errors]) from None
    return build_site(validated, registry, identify)
