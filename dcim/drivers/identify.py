"""Which shipped profile fits an SNMP device: ask sysObjectID and sysDescr and match them
(ProfileRegistry.match: the most specific profile wins). Used by `dcim discover` and, handed to
the site loader, by `profile: auto`.
"""

from __future__ import annotations

from collections.abc import Sequence

from dcim.decode import Missing, RawValue
from dcim.drivers.snmp import SnmpDeviceError, SnmpDriver
from dcim.points import Kind
from dcim.profile import Identity, ProfileRegistry, SnmpProfile
from dcim.site import DeviceSpec, SnmpAuth

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"

# What a probe needs of a DeviceSpec is where to send and how to authenticate, not a profile.
_PROBE = SnmpProfile(name="identify", kind=Kind.PDU, protocol="snmp",
                     description="sysObjectID and sysDescr probe", points={})


def _text(raw: RawValue | None) -> str | None:
    if raw is None or isinstance(raw, Missing):
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace").strip()
    return str(raw).strip().lstrip(".")


def probe_spec(host: str, port: int, auth: SnmpAuth, timeout: float = 2.0,
               retries: int = 1) -> DeviceSpec:
    """A DeviceSpec good for asking a device who it is."""
    return DeviceSpec(id=f"{host}:{port}", profile=_PROBE, host=host, port=port, unit=1,
                      interval=max(10.0, timeout * (retries + 2)), timeout=timeout,
                      retries=retries, max_age=30.0, auth=auth)


async def identify(client: SnmpDriver, device: DeviceSpec,
                   registry: ProfileRegistry) -> Identity:
    """Ask the device for sysObjectID and sysDescr and match them; never raises."""
    try:
        got = await client.get(device, [SYS_OBJECT_ID, SYS_DESCR])
    except (SnmpDeviceError, OSError, TimeoutError) as exc:
        return Identity(device.host, device.port, None, None, (),
                        error=str(exc) or type(exc).__name__)
    oid, descr = _text(got.get(SYS_OBJECT_ID)), _text(got.get(SYS_DESCR))
    return Identity(device.host, device.port, oid, descr, registry.match(oid, descr))


def identify_all(targets: Sequence[tuple[str, int, SnmpAuth]], registry: ProfileRegistry,
                 timeout: float = 2.0, retries: int = 1) -> list[Identity]:
    """Identify several devices at once (in order), from synchronous code (config loading).

    Runs its own event loop in a worker thread, so it works whether or not the caller is
    inside one (the daemon reloading its config).
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from dcim.drivers.snmp import FastClient, PysnmpClient

    async def ask() -> list[Identity]:
        fast, full = FastClient(), None
        try:
            calls = []
            for host, port, auth in targets:
                if auth.version == 3:
                    full = full or PysnmpClient()
                client: SnmpDriver = full if auth.version == 3 and full else fast
                calls.append(identify(client, probe_spec(host, port, auth, timeout, retries),
                                      registry))
            return list(await asyncio.gather(*calls))
        finally:
            fast.close()
            if full is not None:
                full.close()

    with ThreadPoolExecutor(1, thread_name_prefix="dcim-identify") as pool:
        return pool.submit(asyncio.run, ask()).result()
