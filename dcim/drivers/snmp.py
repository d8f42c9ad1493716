"""SNMP collection with pysnmp 7: GETs for scalars, multi-column GETBULK walks for tables.

One SnmpEngine per process; numeric OIDs with lookupMib=False (no MIB resolution, about twice
as fast). This module only fetches; dcim.decode turns what it fetched into points.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from dcim.decode import Missing, RawValue, SnmpData
from dcim.profile import SnmpPoint, SnmpProfile, SnmpSource
from dcim.reasons import ErrorKind, Reason
from dcim.site import DeviceSpec, SnmpAuth
from dcim.snmp.client import Credentials, SnmpClient, SnmpError, SnmpErrorStatus, SnmpTimeout
from dcim.snmp.security import AuthProtocol, PrivProtocol, UsmError, UsmUser

# Agents commonly cap a PDU at ~1472 bytes; 24 varbinds of long OIDs stay well below that.
MAX_GET_VARBINDS = 24
# Varbinds asked of one GETBULK response (columns x repetitions), to stay near one MTU.
MAX_BULK_VARBINDS = 60
_EXCEPTIONS = {"NoSuchObject": "noSuchObject", "NoSuchInstance": "noSuchInstance",
               "EndOfMibView": "endOfMibView", "Null": "null"}


class SnmpDeviceError(Exception):
    """The device as a whole could not be read; `kind` classifies it for metrics."""

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SnmpPlan:
    """What to fetch for a set of sources: scalar OIDs and table columns."""

    scalars: tuple[str, ...]
    columns: tuple[str, ...]


def plan_for(sources: Iterable[SnmpSource]) -> SnmpPlan:
    """The OIDs and columns a set of sources needs (decimals included)."""
    scalars: dict[str, None] = {}
    columns: dict[str, None] = {}
    for src in sources:
        if src.oid is not None:
            scalars[src.oid] = None
            if src.decimals:
                scalars[src.decimals] = None
        else:
            assert src.walk is not None
            columns[src.walk] = None
            if src.decimals:
                columns[src.decimals] = None
    return SnmpPlan(tuple(scalars), tuple(columns))


def primary_plan(profile: SnmpProfile, only: frozenset[str] | None = None) -> SnmpPlan:
    """The first-round plan: every point's primary source."""
    return plan_for(p for n, p in profile.points.items() if only is None or n in only)


def fallback_plan(points: Iterable[SnmpPoint]) -> SnmpPlan:
    """The second-round plan: fallbacks of the points whose primary failed."""
    return plan_for(src for p in points for src in p.fallback)


def to_raw(value: Any) -> RawValue:
    """Convert a pysnmp value into a plain Python value or Missing."""
    name = type(value).__name__
    if name in _EXCEPTIONS:
        return Missing(_EXCEPTIONS[name])
    if name in ("OctetString", "Opaque", "IpAddress", "Bits"):
        return bytes(value.asOctets())
    if name == "ObjectIdentifier" or name == "ObjectName":
        return str(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return Missing(f"unexpected type {name}", Reason.WRONG_TYPE)


@lru_cache(maxsize=1 << 14)
def _oid_tuple(oid: str) -> tuple[int, ...]:
    return tuple(int(x) for x in oid.split("."))


@lru_cache(maxsize=1 << 16)
def _dotted(oid: tuple[int, ...]) -> str:
    """'1.3.6...' for an OID or a row index: a device's rows come back every poll, so the
    text is built once, not once per varbind per poll."""
    return ".".join(map(str, oid))


VarBinds = list[tuple[tuple[int, ...], RawValue]]


class _FoldRefused(Exception):
    """The agent answered a GETBULK with non-repeaters with an error status."""


class _StatusError(Exception):
    def __init__(self, status: str, index: int):
        super().__init__(status)
        self.status = status
        self.index = index


class SnmpDriver:
    """GET with tooBig splitting and multi-column table walks, over some SNMP transport."""

    def __init__(self) -> None:
        # (host, port, column) -> rows found by the last walk: a hint for the next one.
        self._rows: dict[tuple[str, int, str], int] = {}
        # (host, port, scalar) a GET confirmed absent after GETNEXT passed it by: not asked again.
        self._absent: set[tuple[str, int, str]] = set()
        # (host, port, scalar) GETNEXT passed by but GET reads: this agent orders its MIB badly.
        self._get_only: set[tuple[str, int, str]] = set()
        # (host, port) that refused a GETBULK carrying non-repeaters.
        self._no_fold: set[tuple[str, int]] = set()

    async def _get(self, device: DeviceSpec, oids: Sequence[str]) -> VarBinds:
        raise NotImplementedError

    async def _next(self, device: DeviceSpec, oids: Sequence[str]) -> VarBinds:
        raise NotImplementedError

    async def _bulk(self, device: DeviceSpec, oids: Sequence[str], reps: int,
                    non_repeaters: int = 0) -> VarBinds:
        raise NotImplementedError

    def close(self) -> None:
        """Release sockets."""

    async def get(self, device: DeviceSpec, oids: Sequence[str]) -> dict[str, RawValue]:
        """GET the given OIDs, splitting on tooBig and isolating noSuchName (v1)."""
        out: dict[str, RawValue] = {}
        pending = [list(oids[i:i + MAX_GET_VARBINDS]) for i in range(0, len(oids), MAX_GET_VARBINDS)]
        while pending:
            chunk = pending.pop()
            if not chunk:
                continue
            try:
                binds = await self._get(device, chunk)
            except _StatusError as exc:
                if exc.status == "tooBig" and len(chunk) > 1:
                    half = len(chunk) // 2
                    pending += [chunk[:half], chunk[half:]]
                    continue
                if exc.status == "noSuchName" and 0 < exc.index <= len(chunk):
                    out[chunk[exc.index - 1]] = Missing("noSuchName")
                    pending.append(chunk[: exc.index - 1] + chunk[exc.index:])
                    continue
                raise SnmpDeviceError(ErrorKind.PROTOCOL,
                                      f"{device.host}: GET failed: {exc.status}") from None
            if len(binds) != len(chunk):
                raise SnmpDeviceError(ErrorKind.PROTOCOL, f"{device.host}: asked {len(chunk)} OIDs, "
                                      f"got {len(binds)}")
            # Key by what was asked: an agent echoing a different OID is answering garbage.
            for asked, (_, value) in zip(chunk, binds, strict=True):
                out[asked] = value
        return out

    async def read(self, device: DeviceSpec, scalars: Sequence[str], columns: Sequence[str],
                   max_repetitions: int) -> tuple[dict[str, RawValue], dict[str, dict[str, RawValue]]]:
        """GET the scalars and walk the columns in as few exchanges as the device allows.

        On v2c/v3 the `.0` scalars ride in the walk's first GETBULK as non-repeaters: GETNEXT
        of `x` is `x.0` when that exists, so a poll of scalars and tables costs one request
        fewer (at 200 polls/s the exchanges, not the varbinds, are most of the cost). When
        GETNEXT passes a scalar by, a GET settles it once per device: absent (then GETNEXT's
        word is taken from then on) or readable (an agent with a badly ordered MIB: that
        scalar is asked by GET from then on). An agent refusing non-repeaters is read
        without them.
        """
        assert device.auth is not None
        where = (device.host, device.port)
        folded: list[str] = []
        if columns and device.auth.version > 1 and where not in self._no_fold:
            folded = [s for s in scalars[:MAX_GET_VARBINDS]
                      if s.endswith(".0") and (*where, s) not in self._get_only]
        if folded:
            try:
                tables, passed = await self._walk(device, columns, max_repetitions, folded)
            except _FoldRefused:
                self._no_fold.add(where)
                folded = []
        if not folded:
            values = await self.get(device, scalars) if scalars else {}
            return values, await self.walk(device, columns, max_repetitions) if columns else {}
        unsure = [s for s in folded if s not in passed and (*where, s) not in self._absent]
        riding = set(folded)
        ask = [s for s in scalars if s not in riding] + unsure
        values = await self.get(device, ask) if ask else {}
        for s in unsure:
            (self._absent if isinstance(values[s], Missing) else self._get_only).add((*where, s))
        values.update(passed)
        for s in folded:
            values.setdefault(s, _WIRE_MISSING[0x80])  # noSuchObject
        return {s: values[s] for s in scalars}, tables

    async def walk(self, device: DeviceSpec, columns: Sequence[str],
                   max_repetitions: int) -> dict[str, dict[str, RawValue]]:
        """Walk several table columns at once; v2c/v3 with GETBULK, v1 with GETNEXT."""
        tables, _ = await self._walk(device, columns, max_repetitions, ())
        return tables

    async def _walk(self, device: DeviceSpec, columns: Sequence[str], max_repetitions: int,
                    leading: Sequence[str]) -> tuple[dict[str, dict[str, RawValue]],
                                                     dict[str, RawValue]]:
        """Walk the columns, `leading` scalars riding as non-repeaters of the first GETBULK
        (found scalars are returned beside the tables; those GETNEXT passed by are not).

        A device's tables rarely change size, so after the first walk the columns of equal
        length are fetched together with just enough repetitions (rows + 1, the extra one
        showing the end): a 3-phase column is not dragged along for 24 outlets' worth of
        rows. A table that grew costs one more request and loses nothing.
        """
        assert device.auth is not None
        keys = [(device.host, device.port, c) for c in columns]
        if device.auth.version == 1 or any(k not in self._rows for k in keys):
            tables, passed = await self._walk_group(device, columns, max_repetitions, None,
                                                    leading)
        else:
            groups: dict[int, list[str]] = {}
            for key, column in zip(keys, columns, strict=True):
                groups.setdefault(min(self._rows[key] + 1, max_repetitions), []).append(column)
            tables, passed = {}, {}
            for reps, group in groups.items():
                part, found = await self._walk_group(device, group, max_repetitions, reps,
                                                     leading)
                tables.update(part)
                passed.update(found)
                leading = ()
        for key, column in zip(keys, columns, strict=True):
            self._rows[key] = len(tables[column])
        return tables, passed

    async def _walk_group(self, device: DeviceSpec, columns: Sequence[str], max_repetitions: int,
                          first_reps: int | None, leading: Sequence[str] = (),
                          ) -> tuple[dict[str, dict[str, RawValue]], dict[str, RawValue]]:
        assert device.auth is not None
        tables: dict[str, dict[str, RawValue]] = {c: {} for c in columns}
        passed: dict[str, RawValue] = {}
        prefixes = {c: _oid_tuple(c) for c in columns}
        cursor = {c: prefixes[c] for c in columns}
        active = list(columns)
        while active:
            asked = [_dotted(cursor[c]) for c in active]
            try:
                if device.auth.version == 1:
                    binds = await self._next(device, asked)
                else:
                    wanted = first_reps or max_repetitions
                    first_reps = None
                    room = MAX_BULK_VARBINDS - len(leading)
                    reps = max(1, min(wanted, room // len(active)))
                    if leading:
                        binds = await self._bulk(device, [s[:-2] for s in leading] + asked,
                                                 reps, len(leading))
                        passed = {s: raw for s, (oid_t, raw)
                                  in zip(leading, binds[:len(leading)], strict=False)
                                  if oid_t == _oid_tuple(s)}
                        binds = binds[len(leading):]
                        leading = ()
                        if not binds:  # room only for the scalars: walk on without them
                            continue
                    else:
                        binds = await self._bulk(device, asked, reps)
            except _StatusError as exc:
                if leading:
                    raise _FoldRefused from None
                if exc.status == "noSuchName":  # v1 end of MIB
                    break
                raise SnmpDeviceError(ErrorKind.PROTOCOL,
                                      f"{device.host}: walk failed: {exc.status}") from None
            # The answer interleaves the columns (repetition r holds binds[r * width + j] for
            # column j): take each column's stride, up to where it left its column or ended.
            still: list[str] = []
            width = len(active)
            for j, column in enumerate(active):
                prefix = prefixes[column]
                size = len(prefix)
                rows = tables[column]
                last = cursor[column]
                ended = False
                for oid_t, raw in binds[j::width]:
                    if (oid_t[:size] != prefix or oid_t <= last
                            or (isinstance(raw, Missing) and raw.reason == "endOfMibView")):
                        ended = True
                        break
                    rows[_dotted(oid_t[size:])] = raw
                    last = oid_t
                cursor[column] = last
                if not ended:
                    still.append(column)
            if not binds:
                break
            active = still
        return tables, passed


class PysnmpClient(SnmpDriver):
    """SNMP over pysnmp's high-level API (all versions; the v3 path), reusing engine and targets."""

    def __init__(self, max_in_flight: int = 64):
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        super().__init__()
        self._engine = SnmpEngine()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._targets: dict[tuple[str, int, float, int], Any] = {}

    def close(self) -> None:
        """Release the engine's sockets."""
        self._engine.close_dispatcher()

    async def _target(self, device: DeviceSpec) -> Any:
        from pysnmp.hlapi.v3arch.asyncio import UdpTransportTarget

        key = (device.host, device.port, device.timeout, device.retries)
        target = self._targets.get(key)
        if target is None:
            try:
                target = await UdpTransportTarget.create(
                    (device.host, device.port), timeout=device.timeout, retries=device.retries
                )
            except Exception as exc:  # name resolution failure
                raise SnmpDeviceError(ErrorKind.RESOLVE, f"cannot resolve {device.host}: {exc}") from None
            self._targets[key] = target
        return target

    async def _call(self, device: DeviceSpec, fn: Any, *args: Any) -> VarBinds:
        from pysnmp.hlapi.v3arch.asyncio import ContextData

        assert device.auth is not None
        target = await self._target(device)
        async with self._slots:
            err_ind, err_status, err_index, var_binds = await fn(
                self._engine, _make_auth(device.auth), target, ContextData(), *args,
                lookupMib=False,
            )
        if err_ind:
            text = str(err_ind)
            kind = ErrorKind.TIMEOUT if "timeout" in text.lower() else ErrorKind.PROTOCOL
            raise SnmpDeviceError(kind, f"{device.host}:{device.port}: {text}")
        if err_status:
            raise _StatusError(str(err_status.prettyPrint() if hasattr(err_status, "prettyPrint")
                                   else err_status), int(err_index))
        return [(tuple(oid.asTuple()), to_raw(value)) for oid, value in var_binds]

    @staticmethod
    def _binds(oids: Sequence[str]) -> list[Any]:
        from pysnmp.hlapi.v3arch.asyncio import ObjectIdentity, ObjectType

        return [ObjectType(ObjectIdentity(o)) for o in oids]

    async def _get(self, device: DeviceSpec, oids: Sequence[str]) -> VarBinds:
        from pysnmp.hlapi.v3arch.asyncio import get_cmd

        return await self._call(device, get_cmd, *self._binds(oids))

    async def _next(self, device: DeviceSpec, oids: Sequence[str]) -> VarBinds:
        from pysnmp.hlapi.v3arch.asyncio import next_cmd

        return await self._call(device, next_cmd, *self._binds(oids))

    async def _bulk(self, device: DeviceSpec, oids: Sequence[str], reps: int,
                    non_repeaters: int = 0) -> VarBinds:
        from pysnmp.hlapi.v3arch.asyncio import bulk_cmd

        return await self._call(device, bulk_cmd, non_repeaters, reps, *self._binds(oids))


class FastClient(SnmpDriver):
    """SNMP over dcim's own stack (dcim/snmp/): the fast path, one shared socket.

    v1, v2c, and v3 with SHA/SHA-2 authentication and AES privacy (`handles`); MD5 and DES
    users stay on PysnmpClient.
    """

    def __init__(self, max_in_flight: int = 64):
        super().__init__()
        self._client = SnmpClient()
        self._slots = asyncio.Semaphore(max_in_flight)

    @staticmethod
    def handles(auth: SnmpAuth) -> bool:
        """Whether this path speaks these credentials (v3: not MD5, not DES)."""
        return auth.version < 3 or (
            (auth.auth_protocol is None or auth.auth_protocol in AuthProtocol.__members__)
            and (auth.priv_protocol is None or auth.priv_protocol in PrivProtocol.__members__)
        )

    @property
    def client(self) -> SnmpClient:
        """The underlying client (its `stats` count drops, retries and v3 re-syncs)."""
        return self._client

    def close(self) -> None:
        """Close the socket."""
        self._client.close()

    async def _call(self, device: DeviceSpec, method: str, oids: Sequence[str],
                    *extra: int) -> VarBinds:
        auth = device.auth
        assert auth is not None
        where = f"{device.host}:{device.port}"
        call = getattr(self._client, method)
        try:
            creds: Credentials = usm_user(auth) if auth.version == 3 else auth.community
        except ValueError as exc:  # credentials the USM refuses (short passphrase, no user)
            raise SnmpDeviceError(ErrorKind.CONFIG, f"{where}: SNMPv3 credentials: {exc}") from None
        try:
            async with self._slots:
                binds = await call(device.host, device.port, creds, auth.version - 1,
                                   oids, *extra, timeout=device.timeout, retries=device.retries)
        except SnmpTimeout as exc:
            if exc.refused:  # it answers, but nothing that is SNMP for this request
                raise SnmpDeviceError(ErrorKind.PROTOCOL, f"{where}: no valid SNMP response "
                                      f"within {device.timeout:g}s x {device.retries + 1}: "
                                      f"{exc.refused} answers refused, last: {exc.last}") from None
            raise SnmpDeviceError(ErrorKind.TIMEOUT, f"{where}: no SNMP response "
                                  f"within {device.timeout:g}s x {device.retries + 1}") from None
        except SnmpErrorStatus as exc:
            raise _StatusError(exc.name, exc.index) from None
        except UsmError as exc:
            raise SnmpDeviceError(ErrorKind["USM_" + exc.kind.name], f"{where}: {exc}") from None
        except (SnmpError, OSError) as exc:
            raise SnmpDeviceError(ErrorKind.PROTOCOL, f"{where}: {exc}") from None
        return [(oid, _wire_raw(value)) for oid, value in binds]

    async def _get(self, device: DeviceSpec, oids: Sequence[str]) -> VarBinds:
        return await self._call(device, "get", oids)

    async def _next(self, device: DeviceSpec, oids: Sequence[str]) -> VarBinds:
        return await self._call(device, "get_next", oids)

    async def _bulk(self, device: DeviceSpec, oids: Sequence[str], reps: int,
                    non_repeaters: int = 0) -> VarBinds:
        return await self._call(device, "get_bulk", oids, non_repeaters, reps)


_WIRE_MISSING = {0x80: Missing("noSuchObject"), 0x81: Missing("noSuchInstance"),
                 0x82: Missing("endOfMibView")}


def _wire_raw(value: object) -> RawValue:
    """Convert a codec value into a plain Python value or Missing."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, tuple):
        return ".".join(map(str, value))
    if value is None:
        return Missing("null")
    code = getattr(value, "value", None)
    if code in _WIRE_MISSING:
        return _WIRE_MISSING[code]
    return str(value)


_AUTH = {
    "MD5": "usmHMACMD5AuthProtocol", "SHA": "usmHMACSHAAuthProtocol",
    "SHA224": "usmHMAC128SHA224AuthProtocol", "SHA256": "usmHMAC192SHA256AuthProtocol",
    "SHA384": "usmHMAC256SHA384AuthProtocol", "SHA512": "usmHMAC384SHA512AuthProtocol",
}
# net-snmp's AES192/AES256 use the Blumenthal key extension; pysnmp names it explicitly.
_PRIV = {
    "DES": "usmDESPrivProtocol", "AES": "usmAesCfb128Protocol",
    "AES192": "usmAesBlumenthalCfb192Protocol", "AES256": "usmAesBlumenthalCfb256Protocol",
}


@cache
def usm_user(auth: SnmpAuth) -> UsmUser:
    """The fast path's USM user for v3 credentials (ValueError if they are incomplete)."""
    return UsmUser(
        (auth.user or "").encode(),
        AuthProtocol[auth.auth_protocol] if auth.auth_protocol else None,
        (auth.auth_key or "").encode(),
        PrivProtocol[auth.priv_protocol] if auth.priv_protocol else None,
        (auth.priv_key or "").encode(),
    )


@cache
def _make_auth(auth: SnmpAuth) -> Any:
    from pysnmp.hlapi.v3arch.asyncio import CommunityData, UsmUserData
    from pysnmp.hlapi.v3arch.asyncio import auth as pauth

    if auth.version in (1, 2):
        return CommunityData(auth.community, mpModel=auth.version - 1)
    kwargs: dict[str, Any] = {}
    if auth.auth_protocol:
        kwargs["authKey"] = auth.auth_key
        kwargs["authProtocol"] = getattr(pauth, _AUTH[auth.auth_protocol])
    if auth.priv_protocol:
        kwargs["privKey"] = auth.priv_key
        kwargs["privProtocol"] = getattr(pauth, _PRIV[auth.priv_protocol])
    return UsmUserData(auth.user, **kwargs)


async def fetch(client: SnmpDriver, device: DeviceSpec, plan: SnmpPlan,
                max_repetitions: int, data: SnmpData | None = None) -> SnmpData:
    """Fetch a plan's scalars and columns into (a copy of) SnmpData."""
    data = data or SnmpData()
    scalars, tables = await client.read(device, plan.scalars, plan.columns, max_repetitions)
    data.scalars.update(scalars)
    data.tables.update(tables)
    return data
