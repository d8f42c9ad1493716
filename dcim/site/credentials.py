"""Section `credentials`: SNMP and HTTP (Redfish) settings that must hang together."""

from __future__ import annotations

from collections.abc import Mapping

from dcim.config import Credentials
from dcim.site.model import SnmpAuth

# SNMP devices that name no credentials use this one if it exists (else v2c public).
DEFAULT_NAME = "default"


def check_credentials(credentials: Mapping[str, Credentials]) -> list[str]:
    """What does not hang together in each named credential."""
    errors = []
    for name, creds in credentials.items():
        where = f"credentials.{name}"
        if creds.snmp_version == 3:
            if not creds.user:
                errors.append(f"{where}.user: required for snmp_version 3")
            if creds.auth_protocol and not creds.secret("auth_key"):
                errors.append(f"{where}.auth_key: required with auth_protocol (or auth_key_file)")
            if creds.priv_protocol and not creds.auth_protocol:
                errors.append(f"{where}.priv_protocol: privacy needs auth_protocol too")
            if creds.priv_protocol and not creds.secret("priv_key"):
                errors.append(f"{where}.priv_key: required with priv_protocol (or priv_key_file)")
            for key in ("auth_key", "priv_key"):
                secret = creds.secret(key)
                if secret is not None and len(secret) < 8:
                    errors.append(f"{where}.{key}: SNMPv3 keys need at least 8 characters")
        elif creds.user or creds.auth_protocol or creds.priv_protocol:
            errors.append(f"{where}.snmp_version: user/auth/priv settings need snmp_version 3")
        if creds.username and not creds.secret("password"):
            errors.append(f"{where}.password: required with username (or password_file)")
        if creds.secret("password") and not creds.username:
            errors.append(f"{where}.username: required with password")
    return errors


def snmp_auth(credentials: Mapping[str, Credentials], name: str | None) -> SnmpAuth:
    """The SnmpAuth of a device naming `name` (or none); the name must exist if given."""
    creds = credentials.get(name or DEFAULT_NAME)
    if creds is None:
        return SnmpAuth()
    return SnmpAuth(
        version=creds.snmp_version,
        community=creds.secret("community") or "public",
        user=creds.user,
        auth_protocol=creds.auth_protocol,
        auth_key=creds.secret("auth_key"),
        priv_protocol=creds.priv_protocol,
        priv_key=creds.secret("priv_key"),
    )
