"""Hostile config and profile files: what a careless edit or a malicious hand may feed dcim.

Each builder returns the file's bytes; HOSTILE_CONFIGS maps a case name to (bytes, the error
dcim must report for it, without the `path: ` prefix). The valid base config they start from
needs no device to answer: check-config and reload only read files.
"""

from __future__ import annotations

from pathlib import Path

BASE = """\
site: {name: lab}
racks:
  - {id: r01, tenant: acme}
devices:
  - {id: r01-pdu-a, profile: apc-rpdu2, host: 127.0.0.1, rack: r01, feed: A}
"""


def billion_laughs(levels: int = 9, width: int = 9) -> bytes:
    """Nested aliases: about 1.7 KB that expand to width**levels (387 million) strings."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return (BASE + "\n".join(lines) + "\n").encode()


def deep_flow(depth: int = 20_000) -> bytes:
    """20,000 nested `[`: the default YAML composer recurses once per level."""
    return (BASE + "extra: " + "[" * depth + "]" * depth + "\n").encode()


def deep_block(depth: int = 200) -> bytes:
    """Nested block mappings (indentation), each one level deeper."""
    lines = ["extra:"] + [f"{'  ' * (i + 1)}k{i}:" for i in range(depth)]
    return (BASE + "\n".join(lines) + " 1\n").encode()


def recursive_alias() -> bytes:
    """A list that contains itself: an endless walk for anything that copies the tree."""
    return (BASE + "extra: &x [1, *x]\n").encode()


def latin1() -> bytes:
    """A Latin-1 byte in a comment: not UTF-8."""
    return (BASE + "# salle électrique\n").encode("latin-1")


def duplicate_key() -> bytes:
    """The same key twice in one mapping (YAML's last-one-wins would hide the first)."""
    return BASE.replace("site: {name: lab}", "site: {name: lab, name: other}").encode()


def control_character() -> bytes:
    """A BEL character YAML does not allow anywhere."""
    return BASE.replace("lab", "la\x07b").encode()


def bad_timestamp() -> bytes:
    """A value the YAML resolver reads as a date that does not exist."""
    return (BASE + "state_dir: 2026-13-45\n").encode()


def injection(field: str) -> bytes:
    """A name with a newline or MQTT wildcards where it becomes a tag, label or topic."""
    if field == "device":
        return BASE.replace("id: r01-pdu-a", 'id: "r01-pdu-a\\n"').encode()
    if field == "tenant":
        return BASE.replace("tenant: acme", 'tenant: "acme\\nevil_injected"').encode()
    if field == "topic":
        return (BASE + 'sinks:\n  mqtt: {host: 127.0.0.1, topic_prefix: "dcim/#/x+"}\n').encode()
    raise ValueError(field)


# The exact error lines; {path} stands for the config file's path.
HOSTILE_CONFIGS: dict[str, tuple[bytes, str]] = {
    "billion-laughs": (billion_laughs(), "{path}: line 1 column 1: more than 1,000,000 values "
                                         "once aliases are expanded"),
    "deep-flow": (deep_flow(), "{path}: line 6 column 71: nesting deeper than 64 levels"),
    "deep-block": (deep_block(), "{path}: line 69 column 127: nesting deeper than 64 levels"),
    "recursive-alias": (recursive_alias(),
                        "{path}: line 6 column 8: an alias refers to the node that contains it"),
    "latin-1": (latin1(), "{path}: line 6: not UTF-8 text (byte 0xe9 at offset 147)"),
    "duplicate-key": (duplicate_key(),
                      "{path}: line 1 column 19: duplicate key 'name' (first at line 1)"),
    "control-character": (control_character(),
                          "{path}: line 1: character #x0007 is not allowed in YAML"),
    "bad-timestamp": (bad_timestamp(),
                      "{path}: line 6 column 12: invalid value: month must be in 1..12"),
    "device-id-newline": (injection("device"), "devices[0].id: invalid id 'r01-pdu-a\\n': use "
                          "letters, digits and _ . : - (starting with a letter or digit)"),
    "tenant-newline": (injection("tenant"), "racks[0].tenant: invalid id 'acme\\nevil_injected': "
                       "use letters, digits and _ . : - (starting with a letter or digit)"),
    "topic-wildcards": (injection("topic"), "sinks.mqtt.topic_prefix: invalid topic "
                        "'dcim/#/x+': use levels of letters, digits and _ . : - separated by / "
                        "(no wildcards + #, no empty level)"),
}

PROFILE = """\
name: {name}
kind: pdu
protocol: snmp
description: a hostile test profile
points:
  power_w: {{oid: 1.3.6.1.4.1.99999.1.0}}
"""


def hostile_profiles() -> dict[str, tuple[bytes, str]]:
    """Profile files (by file stem) and the error each must produce, after `path: `."""
    def profile(name: str, extra: str = "") -> bytes:
        return (PROFILE.format(name=name) + extra).encode()

    return {
        "extends-int": (profile("extends-int", "extends: 5\n"),
                        "extends: must be a list of fragment names"),
        "extends-nested": (profile("extends-nested", "extends: [[a]]\n"),
                           "extends: must be a list of fragment names"),
        "latin-1": (profile("latin-1", "# données\n").replace(b"\xc3\xa9", b"\xe9"),
                    "line 7: not UTF-8 text (byte 0xe9 at offset 129)"),
        "dup-point": (profile("dup-point", "points: {}\n"),
                      "line 7 column 1: duplicate key 'points' (first at line 5)"),
        "laughs": (billion_laughs().replace(BASE.encode(), PROFILE.format(name="laughs").encode()),
                   "line 1 column 1: more than 1,000,000 values once aliases are expanded"),
    }


def write_config_with_profile(directory: Path, stem: str, text: bytes) -> Path:
    """A valid site config whose profile_dirs hold one (hostile) profile file."""
    profiles = directory / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / f"{stem}.yaml").write_bytes(text)
    config = directory / "site.yaml"
    config.write_text(BASE + "profile_dirs: [profiles]\n")
    return config
