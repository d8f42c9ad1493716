"""Pure conversion of fetched Redfish documents into canonical points, following a profile.

The same walk serves fetching and decoding: `decode_redfish` follows each point's link path
(`@odata.id` links, collection `Members`, Sensor excerpts' `DataSourceUri`) through the
documents fetched so far and records every URI it still needs in `needs`. The driver fetches
those and walks again until nothing is missing, so a fallback's resources are only requested
when the primary source gave nothing. No I/O here: every rule is testable on a dict of
documents.

Conventions (DMTF schemas): members whose Status.State is Absent are not rows; a member that is
Disabled or UnavailableOffline gives no readings (its Status still counts); members are
de-duplicated by @odata.id; a null Reading is unavailable, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dcim.decode import (
    Decoded,
    Missing,
    Unavailable,
    _aggregate,
    _check,
    _Context,
    _scale,
    check_plausible,
)
from dcim.profile import RedfishPoint, RedfishProfile, RedfishSource
from dcim.readings import PointValue
from dcim.reasons import Reason
from dcim.redfish.client import normalize_uri

MAX_MEMBERS = 512
_NO_READINGS = {"Disabled", "UnavailableOffline"}


@dataclass
class Need:
    """A document the walk still needs: a collection (may be $expand-ed) and the properties
    read from it (for $select)."""

    collection: bool = False
    properties: set[str] = field(default_factory=set)


@dataclass
class RedfishData:
    """What a Redfish poll fetched: documents by normalized URI (or why one is missing)."""

    device_uri: str
    documents: dict[str, Mapping[str, Any] | Missing] = field(default_factory=dict)
    # URIs fetched with $select, and the properties they hold (others are not in the document).
    selected: dict[str, frozenset[str]] = field(default_factory=dict)

    def add(self, uri: str, doc: Mapping[str, Any] | Missing,
            selected: frozenset[str] | None = None) -> None:
        """Store a document and every expanded member inside it."""
        key = normalize_uri(uri)
        self.documents[key] = doc
        if selected is None:
            self.selected.pop(key, None)
        else:
            self.selected[key] = selected
        if isinstance(doc, Mapping):
            for member in doc.get("Members") or ():
                if isinstance(member, Mapping) and isinstance(member.get("@odata.id"), str) \
                        and len(member) > 1 and normalize_uri(member["@odata.id"]) not in self.documents:
                    self.documents[normalize_uri(member["@odata.id"])] = member


class _Pending(Exception):
    """The walk reached a document that is not fetched yet (recorded in `needs`)."""


class _Walk:
    def __init__(self, data: RedfishData, needs: dict[str, Need] | None):
        self.data = data
        self.needs = needs

    def doc(self, uri: str, wants: set[str], collection: bool = False) -> Mapping[str, Any]:
        key = normalize_uri(uri)
        doc = self.data.documents.get(key)
        sel = self.data.selected.get(key)
        if doc is None or (sel is not None and not wants <= sel):
            if self.needs is None:
                raise Unavailable(Reason.READ_ERROR, f"{key} not fetched")
            need = self.needs.setdefault(key, Need(collection))
            need.properties |= wants | (sel or set())
            raise _Pending
        if isinstance(doc, Missing):
            raise Unavailable(doc.kind, f"{key}: {doc.reason}")
        return doc

    def link(self, doc: Mapping[str, Any], name: str, wants: set[str],
             collection: bool = False) -> Mapping[str, Any]:
        value = doc.get(name)
        if value is None:
            raise Unavailable(Reason.UNSUPPORTED, f"no {name} in {doc.get('@odata.id', 'the resource')}")
        if not isinstance(value, Mapping):
            raise Unavailable(Reason.WRONG_TYPE, f"{name} is not a link")
        uri = value.get("@odata.id")
        if not isinstance(uri, str):
            return value  # an embedded object, read in place
        return self.doc(uri, wants, collection)

    def follow(self, doc: Mapping[str, Any], path: str, last_wants: set[str],
               collection: bool = False) -> Mapping[str, Any]:
        """Follow a path of link properties from doc."""
        parts = path.split("/") if path else []
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            wants = last_wants if last else {parts[i + 1]}
            doc = self.link(doc, name, wants, collection and last)
        return doc

    def members(self, collection: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Present members of a collection, de-duplicated (all pending ones are recorded)."""
        links = collection.get("Members")
        if not isinstance(links, list):
            raise Unavailable(Reason.WRONG_TYPE,
                              f"{collection.get('@odata.id', 'collection')} has no Members")
        seen: set[str] = set()
        out = []
        pending = False
        for link in links[:MAX_MEMBERS]:
            uri = link.get("@odata.id") if isinstance(link, Mapping) else None
            if not isinstance(uri, str) or normalize_uri(uri) in seen:
                continue
            seen.add(normalize_uri(uri))
            try:
                member = self.doc(uri, set())
            except _Pending:
                pending = True
                continue
            except Unavailable:
                continue  # a member link that 404s is not a member
            if _state(member) != "Absent":
                out.append(member)
        if pending:
            raise _Pending
        return out

    def value(self, doc: Mapping[str, Any], path: str) -> Any:
        """A dotted property path, following a Sensor excerpt's DataSourceUri when it has no
        value of its own."""
        node: Any = doc
        for name in path.split("."):
            if not isinstance(node, Mapping):
                raise Unavailable(Reason.WRONG_TYPE, f"{path}: not an object at {name}")
            if name not in node and isinstance(node.get("DataSourceUri"), str):
                node = self.doc(node["DataSourceUri"], {name})
            if name not in node:
                raise Unavailable(Reason.UNSUPPORTED, f"{path}: not reported")
            node = node[name]
        return node


def _state(doc: Mapping[str, Any]) -> Any:
    status = doc.get("Status")
    return status.get("State") if isinstance(status, Mapping) else None


def _number(source: RedfishSource, raw: Any) -> float:
    if raw is None:
        raise Unavailable(Reason.SENTINEL, "null")
    if source.states is not None:
        key = str(raw).lower() if isinstance(raw, bool) else raw
        if isinstance(key, str) and key in source.states:
            return source.states[key]
        if source.map_default is not None:
            return source.map_default
        raise Unavailable(Reason.SENTINEL, f"unexpected state {str(raw)[:32]!r}")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise Unavailable(Reason.WRONG_TYPE, f"wrong type ({type(raw).__name__})")
    return _scale(source, float(raw))


def _member_key(member: Mapping[str, Any]) -> str:
    ident = member.get("Id")
    if isinstance(ident, str | int) and str(ident):
        return str(ident)
    return normalize_uri(str(member.get("@odata.id", "?"))).rsplit("/", 1)[-1]


def _matches(walk: _Walk, member: Mapping[str, Any], where: Mapping[str, tuple[str, ...]]) -> bool:
    for path, allowed in where.items():
        try:
            if walk.value(member, path) not in allowed:
                return False
        except Unavailable:
            return False
    return True


def _first_parts(source: RedfishSource) -> set[str]:
    parts = {source.property.split(".")[0].replace("{line}", line)
             for line in (source.lines.values() or ["{line}"])}
    return parts | {"Status", "Id"}


def _rows(walk: _Walk, source: RedfishSource, device: Mapping[str, Any],
          done: set[str]) -> dict[tuple[str, str], tuple[str, float | Unavailable, Any]]:
    """(member uri, line) -> (row key, value or why not, raw) for members not yet in `done`."""
    wants = _first_parts(source)
    if source.collection is None:
        targets: list[tuple[str, str, Mapping[str, Any]]] = [("", "", device)]
    else:
        coll = walk.follow(device, source.collection, {"Members"}, collection=True)
        targets = []
        for member in walk.members(coll):
            uri = normalize_uri(str(member.get("@odata.id", "")))
            if uri not in done and _matches(walk, member, source.where):
                targets.append((uri, _member_key(member), member))
    out: dict[tuple[str, str], tuple[str, float | Unavailable, Any]] = {}
    lines = source.lines or {"": ""}
    for uri, key, member in targets:
        for label, line in lines.items():
            row = ".".join(p for p in (key, label) if p)
            try:
                if source.collection is not None and _state(member) in _NO_READINGS \
                        and not source.property.startswith("Status."):
                    raise Unavailable(Reason.UNSUPPORTED, f"member {key} is {_state(member)}")
                doc = walk.follow(member, source.resource, wants)
                raw = walk.value(doc, source.property.replace("{line}", line))
                out[(uri, label)] = (row, _number(source, raw), raw)
            except Unavailable as why:
                out[(uri, label)] = (row, why, None)
    return out


def _row_checked(ctx: _Context, value: float | Unavailable) -> float | Unavailable:
    """A row's value against its point's range, before any aggregate sees it."""
    if isinstance(value, Unavailable):
        return value
    try:
        return ctx.check(value)
    except Unavailable as why:
        return why


def _point(walk: _Walk, point: RedfishPoint, device: Mapping[str, Any],
           ctx: _Context) -> tuple[PointValue, Any]:
    rows: dict[tuple[str, str], tuple[str, float | Unavailable, Any]] = {}
    good_from: str | None = None  # the collection the good rows so far come from
    for source in (point, *point.fallback):
        # A fallback fills in members the sources before it gave nothing for; one reading
        # another collection is only used when nothing good came so far (never mixed rows).
        if good_from is not None and source.collection != good_from:
            continue
        done = {uri for (uri, _), (_, v, _) in rows.items() if not isinstance(v, Unavailable)}
        try:
            found = _rows(walk, source, device, done)
        except Unavailable as why:
            found = {("", ""): ("", why, None)}
        for key, value in found.items():
            if key not in rows or (isinstance(rows[key][1], Unavailable)
                                   and not isinstance(value[1], Unavailable)):
                rows[key] = value
        if good_from is None and any(not isinstance(v, Unavailable) for _, v, _ in found.values()):
            good_from = source.collection or ""
            if source.collection is None:
                break
    scalar = point.collection is None and not point.lines
    if scalar and ("", "") in rows:
        _, single, raw = rows[("", "")]
        if isinstance(single, Unavailable):
            raise single
        return single, raw
    values = {row: _row_checked(ctx, v) for row, v, _ in rows.values() if row}
    for row, v, _ in rows.values():
        if not row and isinstance(v, Unavailable) and not values:
            raise v
    return _aggregate(point, values), {row: raw for row, _, raw in rows.values() if row}


def decode_redfish(profile: RedfishProfile, data: RedfishData, rack_cap_w: float | None = None,
                   only: frozenset[str] | None = None,
                   needs: dict[str, Need] | None = None) -> Decoded:
    """Decode every point the documents allow; with `needs`, record what is still to fetch."""
    walk = _Walk(data, needs)
    out = Decoded()
    wanted = {n: p for n, p in profile.points.items() if only is None or n in only}
    try:
        device = walk.doc(data.device_uri, set().union(*(_top(p) for p in wanted.values())))
    except _Pending:
        return out
    for name, point in wanted.items():
        try:
            ctx = _Context(name, profile.kind, rack_cap_w)
            value, raw = _point(walk, point, device, ctx)
            value, why = _check(ctx, value)
        except _Pending:
            continue
        except Unavailable as exc:
            out.errors[name] = exc.error()
            continue
        out.values[name] = value
        out.raw[name] = raw
        if why:
            out.errors[name] = why
    return check_plausible(profile, out)


def _top(point: RedfishPoint) -> set[str]:
    """Properties of the device resource a point reads (for $select of the device)."""
    out: set[str] = set()
    for source in (point, *point.fallback):
        first = (source.collection or source.resource).split("/")[0]
        out |= {first} if first else _first_parts(source)
    return out
