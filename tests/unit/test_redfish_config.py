"""The site config contract of Redfish devices (issue 13): defaults, credentials, TLS."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.profiles import shipped_registry

from dcim.config import parse_config
from dcim.errors import ConfigError
from dcim.points import Kind
from dcim.site import build_site

CONTRACT = """
site: {name: hall-1}
credentials:
  bmc: {username: dcim, password_file: bmc-pass}
racks: [{id: r01}, {id: r02}]
devices:
  - {id: r01-shelf-1, profile: redfish-power-shelf, host: 10.1.3.11, rack: r01, feed: A,
     credentials: bmc, resource: /redfish/v1/PowerEquipment/PowerShelves/1}
  - {id: cdu-1, profile: redfish-cdu, host: 10.1.0.30, port: 443, tls: true,
     tls_ca_file: /etc/dcim/bmc-ca.pem, credentials: bmc,
     resource: /redfish/v1/ThermalEquipment/CDUs/1, serves: [r01, r02]}
  - {id: r02-pdu-a, profile: redfish-pdu, host: 10.1.3.20, rack: r02, feed: A,
     credentials: bmc, resource: /redfish/v1/PowerEquipment/RackPDUs/1}
  - {id: r02-pdu-b, profile: redfish-pdu, host: 10.1.3.21, rack: r02, feed: B, port: 8443,
     tls_verify: false}
"""


def test_the_issue_contract_resolves(tmp_path: Path) -> None:
    (tmp_path / "bmc-pass").write_text("s3cret\n")
    config = parse_config(yaml.safe_load(CONTRACT), base_dir=tmp_path)
    site = build_site(config, shipped_registry())
    shelf, cdu, pdu, pdu_b = (site.devices[i] for i in
                              ("r01-shelf-1", "cdu-1", "r02-pdu-a", "r02-pdu-b"))
    assert shelf.kind == Kind.SHELF and shelf.port == 443 and shelf.redfish is not None
    assert shelf.redfish.tls and shelf.redfish.tls_verify and shelf.redfish.username == "dcim"
    assert shelf.redfish.password == "s3cret" and "s3cret" not in repr(shelf)
    assert site.racks["r01"].feeds == {"A": ("r01-shelf-1",)}  # a shelf feeds its rack
    assert shelf.rack_cap_w == 190_000
    assert cdu.redfish is not None and cdu.redfish.tls_ca_file == Path("/etc/dcim/bmc-ca.pem")
    assert cdu.serves == ("r01", "r02")
    assert pdu.redfish is not None and pdu.redfish.resource.endswith("RackPDUs/1")  # type: ignore[union-attr]
    assert pdu_b.port == 8443 and pdu_b.redfish is not None
    assert not pdu_b.redfish.tls_verify and pdu_b.redfish.resource is None
    assert pdu_b.redfish.username is None  # no credentials: no authentication


def test_resource_must_be_a_redfish_uri() -> None:
    data = yaml.safe_load(CONTRACT.replace("/redfish/v1/PowerEquipment/PowerShelves/1", "PowerShelves/1"))
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert any(e.startswith("devices[0].resource: 'PowerShelves/1' is not a Redfish resource URI")
               for e in err.value.errors)
