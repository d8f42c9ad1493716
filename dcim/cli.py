"""The `dcim` command line (typer). Heavy imports stay inside commands to keep start-up fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from dcim.compute import Snapshot
    from dcim.readings import PollResult
    from dcim.site import Site

# rich_markup_mode=None: typer's rich help shows every flag, --help included, as `<bool>`,
# as if it took a value; the plain (click) layout shows flags as flags.
app = typer.Typer(
    help="Monitoring daemon for AI/HPC data halls: PDUs, UPSes, meters, chillers, CDUs.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Nagios plugin exit codes, so `dcim pue` drops into existing checks.
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
CONFIG_ERROR = 2

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Site config (YAML).")]


def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"dcim {version('dcim')}")
    except PackageNotFoundError:  # run from a source tree that was never installed
        typer.echo("dcim (version unknown: not installed)")
    raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", is_eager=True,
        callback=_print_version)] = False,
) -> None:
    pass


def _fail_config(errors: list[str], warnings: list[str] | None = None) -> NoReturn:
    _warn(warnings or [])
    for line in errors:
        typer.echo(line, err=True)
    raise typer.Exit(CONFIG_ERROR)


def _warn(warnings: list[str]) -> None:
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)


def _load(path: Path, show_warnings: bool = False) -> Site:
    from dcim.drivers.identify import identify_all
    from dcim.errors import ConfigError
    from dcim.site import load_site

    try:
        site = load_site(path, identify=identify_all)
    except ConfigError as exc:
        _fail_config(exc.errors, exc.warnings if show_warnings else None)
    except Exception as exc:  # a config must never end in a traceback and exit 1
        _fail_config([f"{path}: cannot load ({type(exc).__name__}: {exc}; a dcim bug, "
                      "please report it)"])
    if show_warnings:
        _warn(list(site.warnings))
    return site


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(help="Site config to validate.")]) -> None:
    """Validate a site config; exit 2 printing every error as `path: message`.

    Deprecated keys still load; each is printed as `warning: path: message`.
    """
    site = _load(path, show_warnings=True)
    typer.echo(f"{path}: ok: site {site.name}, {len(site.racks)} racks, "
               f"{len(site.devices)} devices")


@app.command()
def profiles() -> None:
    """List the device profiles dcim knows, with kind and protocol."""
    from dcim.errors import ConfigError
    from dcim.profile import ProfileRegistry

    try:
        registry = ProfileRegistry.load()
    except ConfigError as exc:
        _fail_config(exc.errors)
    rows = [(p.name, str(p.kind), p.protocol, p.description) for p in registry.all()]
    width = max(len(r[0]) for r in rows)
    typer.echo(f"{'PROFILE':<{width}}  {'KIND':<7}  {'PROTOCOL':<8}  DESCRIPTION")
    for name, kind, proto, desc in rows:
        typer.echo(f"{name:<{width}}  {kind:<7}  {proto:<8}  {desc}")


def pue_json(snapshot: Snapshot) -> dict[str, object]:
    """The `dcim pue --json` object (README "Commands")."""
    pue = snapshot.pue
    return {
        "pue": None if pue.value is None else round(pue.value, 4),
        "facility_w": pue.facility_w,
        "it_w": pue.it_w,
        "coverage": round(pue.coverage, 4),
        "status": pue.status,
        "missing": list(pue.missing),
        "reason": pue.reason,
        "target": pue.target,
        "timestamp": snapshot.time,
    }


def _nagios_state(value: float | None, warn: float | None, crit: float | None) -> int:
    if value is None:
        return UNKNOWN
    if crit is not None and value >= crit:
        return CRITICAL
    if warn is not None and value >= warn:
        return WARNING
    return OK


def _kw(watts: float | None) -> str:
    return "n/a" if watts is None else f"{watts / 1000:,.1f} kW"


_POWER_POINTS = ("power_w", "input_power_w", "output_power_w")


def _why_missing(snapshot: Snapshot, device_id: str) -> str:
    dev = snapshot.devices.get(device_id)
    if dev is None:
        return "no data"
    if dev.error:
        return dev.error
    if not dev.fresh:
        return "reading too old"
    power = {k: v for k, v in dev.errors.items() if k in _POWER_POINTS}
    return "; ".join(f"{k}: {v}" for k, v in (power or dev.errors).items()) or "no power reading"


def _print_pue(snapshot: Snapshot, state: int) -> None:
    pue = snapshot.pue
    label = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][state]
    value = "withheld" if pue.value is None else f"{pue.value:.3f}"
    target = f" (target {pue.target:g})" if pue.target else ""
    typer.echo(f"PUE {label}: {value}{target} - site {snapshot.site}, status {pue.status}")
    typer.echo(f"  facility   {_kw(pue.facility_w)}")
    typer.echo(f"  IT         {_kw(pue.it_w)}")
    typer.echo(f"  coverage   {pue.coverage:.0%}")
    if pue.reason:
        typer.echo(f"  why        {pue.reason}")
    for device_id in pue.missing:
        typer.echo(f"  missing    {device_id}: {_why_missing(snapshot, device_id)}")
    racks = sorted((r for r in snapshot.racks.values() if r.utilization is not None),
                   key=lambda r: r.utilization or 0.0, reverse=True)[:5]
    if racks:
        typer.echo("  racks nearest their cap:")
        for r in racks:
            flag = "  FAILOVER RISK" if r.failover_risk else ""
            typer.echo(f"    {r.id:<12} {_kw(r.power_w):>10} of {_kw(r.cap_w):>9} "
                       f"({(r.utilization or 0):.0%}){flag}")
    incomplete = [r.id for r in snapshot.racks.values() if r.power_w is None]
    if incomplete:
        typer.echo(f"  racks withheld (missing PDUs): {', '.join(incomplete)}")


@app.command()
def pue(
    config: ConfigOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    warn: Annotated[float | None, typer.Option(help="Exit 1 when PUE >= this.")] = None,
    crit: Annotated[float | None, typer.Option(help="Exit 2 when PUE >= this.")] = None,
) -> None:
    """Spot check: poll the PUE meters and racks once and print PUE (Nagios exit codes)."""
    from dcim.spotcheck import spot_check

    site = _load(config)
    import asyncio

    snapshot = asyncio.run(spot_check(site))
    state = _nagios_state(snapshot.pue.value, warn, crit)
    if as_json:
        typer.echo(json.dumps(pue_json(snapshot)))
    else:
        _print_pue(snapshot, state)
    raise typer.Exit(state)


def _shard_and_listen(shard_text: str | None,
                      listen: str | None) -> tuple[tuple[int, int] | None, str | None]:
    """--shard resolved (auto: from the environment) and --listen with `+shard` applied."""
    import os

    from dcim.errors import ConfigError
    from dcim.shard import listen_for_shard, resolve_shard

    try:
        shard = resolve_shard(shard_text, os.environ)
        listen = None if listen is None else listen_for_shard(listen, shard)
    except ConfigError as exc:
        _fail_config(exc.errors)
    return (None if shard is None else (shard.index, shard.count)), listen


@app.command()
def run(
    config: ConfigOpt,
    listen: Annotated[str | None, typer.Option(
        help="host:port for /metrics (overrides the config); HOST:PORT+shard adds the "
             "shard index to PORT, for several shards on one host.")] = None,
    shard: Annotated[str | None, typer.Option(
        help="Poll only shard I of N: I/N, I-of-N (a systemd instance name), or auto "
             "(from DCIM_SHARD, or DCIM_SHARDS with a StatefulSet pod ordinal); racks stay "
             "whole within a shard.")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run the daemon: poll, compute, export (systemd Type=notify aware)."""
    from dcim.daemon.runtime import Daemon, configure_logging

    configure_logging(log_level.upper())
    resolved, listen = _shard_and_listen(shard, listen)
    if resolved is not None and shard is not None and shard.strip() == "auto":
        import logging

        logging.getLogger("dcim").info("--shard auto: this is shard %d/%d", *resolved)
    daemon = Daemon(config, listen=listen, shard=resolved)
    import asyncio

    raise typer.Exit(asyncio.run(daemon.run()))


@app.command()
def report(
    config: ConfigOpt,
    period: Annotated[str | None, typer.Option(
        help="A billing month, YYYY-MM, from midnight on the 1st in each tenant's time zone.")
    ] = None,
    from_: Annotated[str | None, typer.Option(
        "--from", help="Start instant, ISO 8601 (no offset: UTC), on a quarter hour.")] = None,
    to: Annotated[str | None, typer.Option(
        help="End instant (exclusive), ISO 8601, on a quarter hour.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant id.")] = None,
    format_: Annotated[str, typer.Option(
        "--format", help="table, csv (columns: docs/tenants.md) or json.")] = "table",
    state_dir: Annotated[Path | None, typer.Option(
        help="Where `dcim run` keeps state.db (default: the config's state_dir, else the "
             "daemon's default).")] = None,
) -> None:
    """Tenant energy, demand and cost for a period, from the daemon's interval ledger."""
    import time

    from dcim.compute.billing import PeriodError
    from dcim.daemon.intervals import read_recorded
    from dcim.daemon.runtime import default_state_dir
    from dcim.report import FORMATS, Period, build, ledger_path, windows

    site = _load(config)
    if format_ not in FORMATS:
        _fail_config([f"--format {format_!r}: give table, csv or json"])
    if (period is None) == (from_ is None and to is None) or (period is None and None in (from_, to)):
        _fail_config(["give --period YYYY-MM, or both --from and --to (not both kinds)"])
    try:
        tenant_windows, site_window = windows(site, Period(period, from_, to), tenant)
    except PeriodError as exc:
        _fail_config([str(exc)])
    starts = [w.start for w in (*tenant_windows.values(), site_window)]
    ends = [w.end for w in (*tenant_windows.values(), site_window)]
    path = ledger_path(state_dir or site.state_dir or default_state_dir())
    try:
        recorded = read_recorded(path, min(starts), max(ends))
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    result = build(site, recorded, tenant_windows, site_window, time.time())
    typer.echo(FORMATS[format_](result), nl=False)


def poll_json(result: PollResult, profile: str) -> dict[str, object]:
    """The `dcim poll --json` object (README "Commands")."""
    errors = {name: {"reason": str(e.reason), "message": e.message}
              for name, e in result.errors.items()}
    if result.error:
        errors = {"*": {"reason": str(result.error_kind), "message": result.error}}
    return {"device": result.device, "profile": profile, "points": dict(result.values),
            "errors": errors}


@app.command()
def poll(
    config: ConfigOpt,
    device: Annotated[str, typer.Argument(help="Device id from the config.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Read one device now and show every point, raw and scaled, and per-point errors."""
    from dcim.spotcheck import poll_once

    site = _load(config)
    if device not in site.devices:
        known = ", ".join(sorted(site.devices))
        typer.echo(f"unknown device '{device}'; known: {known}", err=True)
        raise typer.Exit(CONFIG_ERROR)
    spec = site.devices[device]
    import asyncio

    (result,) = asyncio.run(poll_once(site, [spec]))
    if as_json:
        typer.echo(json.dumps(poll_json(result, spec.profile.name)))
    else:
        label = f"{spec.profile.name}, {spec.detected}" if spec.detected else spec.profile.name
        _print_poll(result, label, spec.host, spec.port)
    raise typer.Exit(0 if result.up else 1)


def _print_poll(result: PollResult, profile: str, host: str, port: int) -> None:
    status = "up" if result.up else f"DOWN ({result.error_kind}): {result.error}"
    typer.echo(f"{result.device} ({profile} at {host}:{port}) {status}, "
               f"{result.duration * 1000:.0f} ms")
    from dcim.points import POINTS

    for name in sorted({*result.values, *result.errors}):
        spec = POINTS[name]  # profiles name canonical points only
        raw = result.raw.get(name)
        if name in result.values:
            value = result.values[name]
            shown = (spec.show(value) if isinstance(value, float | int)
                     else ", ".join(f"{k}: {spec.show(v)}" for k, v in value.items()))
            typer.echo(f"  {name:<20} {shown}   (raw {raw})")
        else:
            typer.echo(f"  {name:<20} -   {result.errors[name]}   (raw {raw})")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return text.strip("[]"), 161
    return host.strip("[]"), int(port)


@app.command()
def discover(
    targets: Annotated[list[str], typer.Argument(help="HOST or HOST:PORT of SNMP agents.")],
    credentials: Annotated[str | None, typer.Option(
        help="Credentials name from --config (default: SNMPv2c community public).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Site config holding the credentials and profile_dirs.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 2.0,
) -> None:
    """Ask SNMP agents who they are; print ready-to-paste device entries with their profile.

    Exit 0 when every target matched one profile, 1 otherwise (each miss is named on stderr
    with the sysObjectID and sysDescr it showed).
    """
    import asyncio

    from dcim.config import load_config_file
    from dcim.drivers.identify import identify, probe_spec
    from dcim.drivers.snmp import FastClient, PysnmpClient, SnmpDriver
    from dcim.errors import ConfigError
    from dcim.profile import ProfileRegistry
    from dcim.site.credentials import snmp_auth

    try:
        if config is not None:
            validated = load_config_file(config)
            if validated.errors:
                raise ConfigError(validated.errors)
            creds = validated.config.credentials
            registry = ProfileRegistry.load(config.parent / d
                                            for d in validated.config.profile_dirs)
        else:
            creds, registry = {}, ProfileRegistry.load()
    except ConfigError as exc:
        _fail_config(exc.errors)
    if credentials is not None and credentials not in creds:
        where = f"in {config}" if config else "without --config"
        _fail_config([f"--credentials: no credentials '{credentials}' {where}"])
    auth = snmp_auth(creds, credentials)

    async def ask() -> list[object]:
        client: SnmpDriver = PysnmpClient() if auth.version == 3 else FastClient()
        try:
            return list(await asyncio.gather(*(
                identify(client, probe_spec(*_host_port(t), auth, timeout), registry)
                for t in targets)))
        finally:
            client.close()

    from dcim.profile import Identity

    missed = 0
    for ident in asyncio.run(ask()):
        assert isinstance(ident, Identity)
        where = f"{ident.host}:{ident.port}"
        if ident.error is not None:
            missed += 1
            typer.echo(f"{where}: no answer: {ident.error}", err=True)
            continue
        if ident.profile is None:
            missed += 1
            why = (f"several profiles fit equally ({', '.join(ident.profiles)}): name one"
                   if ident.profiles else "no shipped profile matches: write one "
                   "(collectors/README.md) or name the closest")
            typer.echo(f"{where}: {why} ({ident.describe()})", err=True)
            continue
        device_id = "dev-" + "".join(c if c.isalnum() else "-" for c in where)
        extra = f", credentials: {credentials}" if credentials else ""
        typer.echo(f"  # {where}: {ident.describe()}")
        typer.echo(f"  - {{id: {device_id}, profile: {ident.profile}, host: {ident.host}, "
                   f"port: {ident.port}{extra}}}")
    raise typer.Exit(1 if missed else 0)


@app.command()
def simulate(
    preset: Annotated[str, typer.Option(help="tiny | hall-18mw | bench-2000")],
    write_config: Annotated[Path, typer.Option("--write-config", help="Site config to write.")],
    seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 1,
    control: Annotated[str, typer.Option(help="HOST:PORT of the control API (0: any).")] =
        "127.0.0.1:0",
    workers: Annotated[int, typer.Option(help="Processes serving the devices.")] = 1,
    base_port: Annotated[int | None, typer.Option(help="First device port (default: any).")] =
        None,
    frozen: Annotated[bool, typer.Option(
        "--frozen", help="Hold the world at its start time (tests).")] = False,
    redfish_cert: Annotated[Path | None, typer.Option(
        help="Serve Redfish over HTTPS with this certificate (PEM).")] = None,
    redfish_key: Annotated[Path | None, typer.Option(help="Its private key (PEM).")] = None,
    redfish_ca: Annotated[Path | None, typer.Option(
        help="The CA that signed it (written to the config as tls_ca_file).")] = None,
) -> None:
    """Serve a simulated site over SNMP, Modbus and Redfish on loopback and write its config."""
    from dcim.sim.command import SimulateOptions, run

    tls = None
    if redfish_cert and redfish_key and redfish_ca:
        tls = (redfish_cert, redfish_key, redfish_ca)
    elif redfish_cert or redfish_key or redfish_ca:
        typer.echo("dcim simulate: --redfish-cert, --redfish-key and --redfish-ca go together",
                   err=True)
        raise typer.Exit(2)
    raise typer.Exit(run(SimulateOptions(
        preset=preset, seed=seed, write_config=write_config, control=control, workers=workers,
        frozen=frozen, base_port=base_port, redfish_tls=tls,
    )))


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help="Exit after this many seconds.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Print one plain snapshot and exit.")] =
        False,
    seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 1,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 5.0,
) -> None:
    """Simulated 18 MW hall polled through dcim, with a live terminal view."""
    from dcim.demo import run_demo

    raise typer.Exit(run_demo(duration=duration, once=once, seed=seed, interval=interval))


assets_app = typer.Typer(
    help="The alert rules, dashboards and service units installed with dcim.",
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(assets_app, name="assets")


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


@assets_app.command("export")
def assets_export(
    directory: Annotated[Path, typer.Argument(help="Where to write them (created if missing).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that differ.")] =
        False,
) -> None:
    """Write alerts/, dashboards/ and deploy/ (systemd, Kubernetes) into DIRECTORY."""
    from dcim.assets import export_assets

    try:
        result = export_assets(directory, force)
    except OSError as exc:
        typer.echo(f"dcim assets export: {exc.filename or directory}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    if result.refused:
        typer.echo(f"dcim assets export: {_files(len(result.differing))} in {directory} "
                   "differ from dcim's; nothing written (--force overwrites them):", err=True)
        for rel in result.differing:
            typer.echo(f"  {rel}", err=True)
        raise typer.Exit(1)
    for rel in result.written:
        typer.echo(f"wrote {directory / rel}")
    if result.unchanged:
        typer.echo(f"{_files(len(result.unchanged))} already there and the same")
    typer.echo("where they go (each file's header says more):\n"
               "  alerts/rules/*.yml        Prometheus rule_files; check: promtool test rules "
               "alerts/tests/*.yml\n"
               "  alerts/alertmanager*      Alertmanager config example and templates\n"
               "  dashboards/               Grafana: provisioning/ and the dashboard JSON\n"
               "  deploy/dcim.service       /etc/systemd/system/ (deploy/kubernetes: manifests)")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
