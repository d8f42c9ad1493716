"""Hostile config and profile files (tests/support/hostile_files.py) are refused with
`path: message`, quickly and in bounded memory, by the one safe loader (dcim/yamlsafe.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from support.hostile_files import (
    BASE,
    HOSTILE_CONFIGS,
    hostile_profiles,
    write_config_with_profile,
)

from dcim import yamlsafe
from dcim.errors import ConfigError
from dcim.profile import ProfileRegistry
from dcim.sinks.influx_lines import encode
from dcim.site import load_site


@pytest.mark.parametrize("case", sorted(HOSTILE_CONFIGS))
def test_a_hostile_config_is_refused_naming_the_file(case: str, tmp_path: Path) -> None:
    text, message = HOSTILE_CONFIGS[case]
    path = tmp_path / "site.yaml"
    path.write_bytes(text)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            load_site(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.errors == [message.format(path=path)]
    assert peak < 64 * 1024 * 1024  # a bomb is refused before it is expanded


@pytest.mark.parametrize("stem", sorted(hostile_profiles()))
def test_a_hostile_profile_is_refused_naming_the_file(stem: str, tmp_path: Path) -> None:
    text, message = hostile_profiles()[stem]
    config = write_config_with_profile(tmp_path, stem, text)
    with pytest.raises(ConfigError) as info:
        load_site(config)
    assert info.value.errors == [f"{tmp_path / 'profiles' / stem}.yaml: {message}"]


def test_merge_keys_and_anchors_still_work() -> None:
    data = yamlsafe.parse("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\nl: [*b, *b]\n", "t")
    assert data["d"] == {"x": 3, "y": 2} and data["l"] == [{"x": 1, "y": 2}] * 2


def test_a_file_larger_than_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    with path.open("wb") as fh:
        fh.write(BASE.encode())
        fh.seek(yamlsafe.MAX_BYTES + 10)
        fh.write(b"\n")
    with pytest.raises(ConfigError) as info:
        yamlsafe.load(path)
    assert info.value.errors == [f"{path}: larger than 8 MiB"]


def test_the_shipped_profiles_load_with_the_safe_loader() -> None:
    assert len(ProfileRegistry.load().names()) >= 10


def test_a_newline_in_a_tag_never_starts_a_line() -> None:
    line = encode("dcim_rack", {"tenant": "acme\nevil_injected value=1 1"}, {"power_w": 1.0}, 5)
    assert line is not None and "\n" not in line
    assert line == "dcim_rack,tenant=acme\\nevil_injected\\ value\\=1\\ 1 power_w=1.0 5"


@pytest.mark.parametrize("case", ["billion-laughs", "deep-flow", "latin-1", "tenant-newline"])
def test_check_config_on_a_hostile_file_exits_2_without_a_traceback(case: str,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(HOSTILE_CONFIGS[case][0])
    proc = subprocess.run([sys.executable, "-m", "dcim", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [HOSTILE_CONFIGS[case][1].format(path=path)]
