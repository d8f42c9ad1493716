"""The project's Redfish mockups (tests/fixtures/redfish) and their goldens, offline and live.

A mockup is a directory in the DMTF layout (index.json = /redfish/v1, one index.json per
resource below); `<name>.golden.json` beside it names the profile, the resource (null: the
collection's only member) and the expected points and errors. New mockups are picked up by
every test that iterates `redfish_mockups()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcim.decode import Decoded, Missing
from dcim.profile import RedfishProfile
from dcim.redfish.decode import Need, RedfishData, decode_redfish

REDFISH_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "redfish"


@dataclass(frozen=True)
class Mockup:
    """One mockup directory and its golden."""

    name: str
    root: Path
    profile: str
    resource: str | None
    golden: dict[str, Any]


def read_mockup(path: Path) -> Mockup:
    """The mockup whose golden is `path` (<name>.golden.json)."""
    name = path.name.removesuffix(".golden.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    golden = {"points": data.get("points") or {}, "errors": data.get("errors") or []}
    return Mockup(name, REDFISH_FIXTURES / name, data["profile"], data.get("resource"), golden)


def redfish_mockups() -> list[Mockup]:
    """Every mockup with a golden, sorted by name."""
    return [read_mockup(p) for p in sorted(REDFISH_FIXTURES.glob("*.golden.json"))]


def mockup_documents(root: Path) -> dict[str, dict[str, Any]]:
    """Every resource of a mockup by URI (what a GET of it returns)."""
    docs = {}
    for index in sorted(root.rglob("index.json")):
        rel = index.parent.relative_to(root).as_posix()
        uri = "/redfish/v1" + ("" if rel == "." else "/" + rel)
        docs[uri] = json.loads(index.read_text(encoding="utf-8"))
    return docs


def offline_data(mockup: Mockup, collection: str) -> RedfishData:
    """The documents of a mockup as a poll would have fetched them (404s left out)."""
    docs = mockup_documents(mockup.root)
    resource = mockup.resource
    if resource is None:
        members = {m["@odata.id"] for m in docs[collection]["Members"]}
        assert len(members) == 1, f"{mockup.name}: give a resource, {collection} has {members}"
        resource = members.pop()
    data = RedfishData(resource)
    for uri, doc in docs.items():
        data.add(uri, doc)
    return data


def decode_mockup(profile: RedfishProfile, mockup: Mockup) -> Decoded:
    """Decode a mockup offline; what it does not hold answers 404, as sushy-static does."""
    data = offline_data(mockup, profile.collection)
    for _ in range(8):
        needs: dict[str, Need] = {}
        decode_redfish(profile, data, None, None, needs)
        if not needs:
            break
        for uri in needs:
            data.add(uri, Missing("404 Not Found"))
    return decode_redfish(profile, data)
