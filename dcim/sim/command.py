"""`dcim simulate`: build a preset, serve every device, write the config, run until signalled.

With --workers N the devices are spread over N forked processes (for benchmarks); the main
process keeps the control API and its own copy of the world for /truth. Every process computes
the same state (the physics is a pure function of seed and time) and the main process
forwards each control action to all workers, answering once they have applied it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import multiprocessing
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

from dcim.errors import ConfigError
from dcim.profile import ProfileRegistry
from dcim.sim import presets, siteconfig
from dcim.sim.agents import Agents, Endpoint, PortInUse
from dcim.sim.control import ControlServer
from dcim.sim.topology import SimDevice, SimSite
from dcim.sim.world import ActionError, World

USAGE_ERROR = 2
TICK_OFFSET_S = 0.002  # tick just after the second turns, never just before


class SimulateError(Exception):
    """A problem the user can fix (unknown preset, port in use ...): exit 2 with the message."""


@dataclass(frozen=True)
class SimulateOptions:
    """What `dcim simulate` was asked to do."""

    preset: str
    seed: int = 1
    write_config: Path = Path("sim-site.yaml")
    control: str = "127.0.0.1:0"
    workers: int = 1
    frozen: bool = False
    base_port: int | None = None
    host: str = "127.0.0.1"
    # Redfish over HTTPS: the services' certificate and key, and the CA the config trusts.
    redfish_tls: tuple[Path, Path, Path] | None = None

    def redfish_context(self) -> ssl.SSLContext | None:
        """The server TLS context of the Redfish services (None: plain HTTP)."""
        if self.redfish_tls is None:
            return None
        cert, key, _ = self.redfish_tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise SimulateError(f"--redfish-cert/--redfish-key: cannot load {cert}, {key}: "
                                f"{exc}") from None
        return context


def parse_host_port(text: str) -> tuple[str, int]:
    """Split HOST:PORT (PORT 0 = any free port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SimulateError(f"--control: expected HOST:PORT such as 127.0.0.1:8181, got {text!r}")
    return host, int(port)


def _prepare(opts: SimulateOptions) -> tuple[SimSite, ProfileRegistry]:
    try:
        site = presets.build(opts.preset, opts.seed)
    except KeyError as exc:
        raise SimulateError(str(exc.args[0])) from None
    try:
        registry = ProfileRegistry.load()
    except ConfigError as exc:
        raise SimulateError("cannot load the device profiles:\n" + "\n".join(exc.errors)) from None
    unknown = sorted({d.profile for d in site.devices if d.profile not in registry})
    if unknown:
        raise SimulateError(f"preset {opts.preset} needs profiles that are not installed: "
                            f"{', '.join(unknown)}")
    if opts.workers < 1:
        raise SimulateError("--workers must be at least 1")
    if opts.base_port is not None and not 1024 <= opts.base_port <= 65535 - len(site.devices):
        raise SimulateError(f"--base-port must leave room for {len(site.devices)} ports")
    return site, registry


def run(opts: SimulateOptions, out: TextIO = sys.stdout) -> int:
    """Run the simulator until SIGINT/SIGTERM; the process exit code."""
    try:
        parse_host_port(opts.control)
        site, registry = _prepare(opts)
        if opts.workers > 1:
            return _run_with_workers(opts, site, registry, out)
        return asyncio.run(_serve(opts, site, registry, out))
    except SimulateError as exc:
        print(f"dcim simulate: {exc}", file=sys.stderr)
        return USAGE_ERROR


async def _ticker(world: World) -> None:
    while True:
        now = time.time()
        await asyncio.sleep(math.floor(now) + 1.0 + TICK_OFFSET_S - now)
        world.advance(time.time())


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _start_control(opts: SimulateOptions, world: World,
                         apply: Callable[[dict[str, Any]], Any]) -> ControlServer:
    host, port = parse_host_port(opts.control)
    control = ControlServer(world.truth, world.device_view, apply)
    try:
        await control.start(host, port)
    except OSError as exc:
        raise SimulateError(f"control API: cannot listen on {host}:{port}: {exc.strerror or exc}") \
            from None
    return control


def _publish(opts: SimulateOptions, site: SimSite, registry: ProfileRegistry,
             endpoints: dict[str, Endpoint], control: ControlServer, out: TextIO) -> None:
    host, _ = parse_host_port(opts.control)
    url = f"http://{host}:{control.port}"
    header = [f"Written by `dcim simulate --preset {opts.preset} --seed {opts.seed}`;"
              " valid while that simulator runs.",
              f"Simulator control API: {url} (GET /truth)"]
    ca = opts.redfish_tls[2].resolve() if opts.redfish_tls else None
    text = siteconfig.render(site, endpoints, registry, header, redfish_ca_file=ca)
    siteconfig.check(text, registry)
    path = opts.write_config.resolve()
    siteconfig.write(path, text)
    protocols: dict[str, int] = {}
    for d in site.devices:
        proto = registry[d.profile].protocol
        protocols[proto] = protocols.get(proto, 0) + 1
    summary = ", ".join(f"{n} {p.upper() if p == 'snmp' else p.capitalize()}"
                        for p, n in sorted(protocols.items()))
    ports = len({(e.host, e.port) for e in endpoints.values()})
    print(f"simulating {site.name} (preset {opts.preset}, seed {opts.seed}): {len(site.devices)} "
          f"devices ({summary}) on {ports} ports of {opts.host}"
          f"{', frozen in time' if opts.frozen else ''}", file=out)
    print(f"control: {url}", file=out)
    print(f"config: {path}", file=out)
    print(f"pid: {os.getpid()}", file=out)
    print("ready (Ctrl-C or SIGTERM to stop)", file=out, flush=True)


async def _serve(opts: SimulateOptions, site: SimSite, registry: ProfileRegistry,
                 out: TextIO) -> int:
    world = World(site, opts.seed, registry, time.time(), frozen=opts.frozen)
    stop = _stop_event()

    async def apply(action: dict[str, Any]) -> dict[str, Any]:
        return world.apply(action)

    control = await _start_control(opts, world, apply)
    agents = Agents(world, opts.host, opts.redfish_context())
    ticker = None
    try:
        try:
            await agents.start(list(site.devices), opts.base_port)
        except PortInUse as exc:
            raise SimulateError(str(exc)) from None
        _publish(opts, site, registry, agents.endpoints, control, out)
        ticker = None if opts.frozen else asyncio.create_task(_ticker(world))
        await stop.wait()
    finally:
        if ticker is not None:
            ticker.cancel()
        await agents.close()
        await control.close()
    print("stopped; every port is free", file=out, flush=True)
    return 0


# --- several worker processes ------------------------------------------------------------


def _slices(site: SimSite, registry: ProfileRegistry, workers: int) -> list[list[SimDevice]]:
    """Devices per worker; a gateway's units stay together (they share one port)."""
    groups: dict[str, list[SimDevice]] = {}
    for d in site.devices:
        key = d.gateway if d.gateway and registry[d.profile].protocol == "modbus" else d.id
        groups.setdefault(key, []).append(d)
    out: list[list[SimDevice]] = [[] for _ in range(workers)]
    for i, members in enumerate(groups.values()):
        out[i % workers].extend(members)
    return out


def _ports_needed(devices: list[SimDevice]) -> int:
    return len({d.gateway or d.id for d in devices})


def _worker(conn: Connection, opts: SimulateOptions, start: float, device_ids: list[str],
            base_port: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    site, registry = _prepare(opts)
    try:
        asyncio.run(_worker_serve(conn, opts, site, registry, start, device_ids, base_port))
    finally:
        conn.close()


async def _worker_serve(conn: Connection, opts: SimulateOptions, site: SimSite,
                        registry: ProfileRegistry, start: float, device_ids: list[str],
                        base_port: int | None) -> None:
    world = World(site, opts.seed, registry, start, frozen=opts.frozen)
    world.advance(time.time())
    agents = Agents(world, opts.host, opts.redfish_context())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await agents.start([site.devices_by_id[i] for i in device_ids], base_port)
    except PortInUse as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready", {d: (e.host, e.port, e.unit) for d, e in agents.endpoints.items()}))

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            stop.set()  # the main process is gone
            return
        if msg[0] == "apply":
            with contextlib.suppress(ActionError):
                world.advance(time.time())
                world.apply(msg[2])
            conn.send(("ack", msg[1]))
        elif msg[0] == "stop":
            stop.set()

    loop.add_reader(conn.fileno(), on_message)
    ticker = None if opts.frozen else asyncio.create_task(_ticker(world))
    try:
        await stop.wait()
    finally:
        loop.remove_reader(conn.fileno())
        if ticker is not None:
            ticker.cancel()
        await agents.close()


def _run_with_workers(opts: SimulateOptions, site: SimSite, registry: ProfileRegistry,
                      out: TextIO) -> int:
    ctx = multiprocessing.get_context("fork")
    start = time.time()
    slices = _slices(site, registry, opts.workers)
    procs: list[tuple[Any, Connection]] = []
    next_port = opts.base_port
    for devices in slices:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, daemon=True,
                           args=(child, opts, start, [d.id for d in devices], next_port))
        proc.start()
        child.close()
        procs.append((proc, parent))
        if next_port is not None:
            next_port += _ports_needed(devices)
    try:
        return asyncio.run(_serve_main(opts, site, registry, start, procs, out))
    finally:
        for _, conn in procs:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(("stop",))
        for proc, _ in procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
        print("stopped; every port is free", file=out, flush=True)


async def _serve_main(opts: SimulateOptions, site: SimSite, registry: ProfileRegistry,
                      start: float, procs: list[tuple[Any, Connection]], out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    world = World(site, opts.seed, registry, start, frozen=opts.frozen)
    world.advance(time.time())
    stop = _stop_event()
    endpoints: dict[str, Endpoint] = {}
    for _, conn in procs:
        kind, payload = await loop.run_in_executor(None, conn.recv)
        if kind == "error":
            raise SimulateError(payload)
        endpoints.update({d: Endpoint(*e) for d, e in payload.items()})

    counter = itertools.count()
    pending: dict[int, tuple[asyncio.Future[None], set[int]]] = {}

    def on_ack(index: int, conn: Connection) -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            stop.set()  # a worker died: stop rather than serve half a site
            return
        entry = pending.get(msg[1])
        if entry is not None:
            entry[1].discard(index)
            if not entry[1] and not entry[0].done():
                entry[0].set_result(None)

    for i, (_, conn) in enumerate(procs):
        loop.add_reader(conn.fileno(), on_ack, i, conn)

    async def apply(action: dict[str, Any]) -> dict[str, Any]:
        result = world.apply(action)  # validates; ActionError answers 4xx before any worker
        ident = next(counter)
        done: asyncio.Future[None] = loop.create_future()
        pending[ident] = (done, set(range(len(procs))))
        for _, conn in procs:
            conn.send(("apply", ident, action))
        try:
            await asyncio.wait_for(done, 5.0)
        finally:
            pending.pop(ident, None)
        return result

    control = await _start_control(opts, world, apply)
    ticker = None
    try:
        _publish(opts, site, registry, endpoints, control, out)
        ticker = None if opts.frozen else asyncio.create_task(_ticker(world))
        await stop.wait()
    finally:
        if ticker is not None:
            ticker.cancel()
        for _, conn in procs:
            loop.remove_reader(conn.fileno())
        await control.close()
    return 0


# --- dcim demo ---------------------------------------------------------------------------
