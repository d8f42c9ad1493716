"""`--shard`: explicit I/N, a systemd instance name I-of-N, and `auto` from the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dcim.errors import ConfigError
from dcim.shard import Shard, parse_shard, resolve_shard, shard_from_env


@pytest.mark.parametrize(("text", "want"), [
    ("0/1", Shard(0, 1)), ("1/2", Shard(1, 2)), ("2-of-4", Shard(2, 4)), (" 3 / 4 ", Shard(3, 4)),
])
def test_explicit_shard(text: str, want: Shard) -> None:
    assert parse_shard(text) == want
    assert resolve_shard(text, {}) == want


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "1/0", "1-of-1", "1/2/3", ""])
def test_bad_shard_names_the_option(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_shard(text)
    assert exc.value.errors[0].startswith("--shard: ")


def test_no_shard_is_the_whole_site() -> None:
    assert resolve_shard(None, {"DCIM_SHARD": "1/2"}) is None


@pytest.mark.parametrize(("env", "want"), [
    ({"DCIM_SHARD": "2-of-4"}, Shard(2, 4)),                     # systemd: Environment=DCIM_SHARD=%i
    ({"DCIM_SHARD": "1/3", "DCIM_SHARDS": "9", "HOSTNAME": "dcim-7"}, Shard(1, 3)),  # explicit wins
    ({"DCIM_SHARDS": "4", "DCIM_SHARD_INDEX": "3"}, Shard(3, 4)),  # downward API pod-index label
    ({"DCIM_SHARDS": "4", "POD_NAME": "dcim-hall-b-2", "HOSTNAME": "x"}, Shard(2, 4)),
    ({"DCIM_SHARDS": "4", "HOSTNAME": "dcim-0"}, Shard(0, 4)),
])
def test_auto(env: dict[str, str], want: Shard) -> None:
    assert shard_from_env(env) == want
    assert resolve_shard("auto", env) == want


@pytest.mark.parametrize(("env", "field"), [
    ({}, "--shard auto"),
    ({"DCIM_SHARDS": "4"}, "--shard auto"),
    ({"DCIM_SHARDS": "four", "HOSTNAME": "dcim-1"}, "DCIM_SHARDS"),
    ({"DCIM_SHARDS": "4", "HOSTNAME": "dcim-4"}, "HOSTNAME"),      # ordinal beyond the count
    ({"DCIM_SHARDS": "4", "HOSTNAME": "dcim-node"}, "HOSTNAME"),   # no ordinal: never guess
    ({"DCIM_SHARDS": "4", "DCIM_SHARD_INDEX": "x"}, "DCIM_SHARD_INDEX"),
    ({"DCIM_SHARD": "4/4"}, "DCIM_SHARD"),
])
def test_auto_refuses_to_guess(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        shard_from_env(env)
    assert exc.value.errors[0].startswith(f"{field}: "), exc.value.errors


def test_run_with_an_unresolvable_auto_shard_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("site: {name: x}\n")
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "dcim", "run", "--config", str(config),
                           "--shard", "auto"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--shard auto: set DCIM_SHARD=I/N" in proc.stderr


def test_listen_port_per_shard() -> None:
    from dcim.shard import listen_for_shard

    assert listen_for_shard("0.0.0.0:9860+shard", Shard(2, 4)) == "0.0.0.0:9862"
    assert listen_for_shard("[::1]:9860+shard", Shard(1, 2)) == "[::1]:9861"
    assert listen_for_shard("127.0.0.1:9860", Shard(3, 4)) == "127.0.0.1:9860"
    for bad, shard in (("9860+shard", Shard(0, 1)), ("h:x+shard", Shard(0, 1)),
                       ("h:9860+shard", None), ("h:65535+shard", Shard(1, 2))):
        with pytest.raises(ConfigError) as exc:
            listen_for_shard(bad, shard)
        assert exc.value.errors[0].startswith("--listen: ")
