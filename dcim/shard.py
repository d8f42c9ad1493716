"""Which shard of a site this process polls: `--shard I/N`, `I-of-N`, or `auto` from the environment.

A fleet is deployed without per-instance config: a systemd template instance
`dcim@2-of-4.service` passes its instance name, a Kubernetes StatefulSet pod takes its ordinal
from its name (`dcim-2`) or from the `apps.kubernetes.io/pod-index` label, and the shard count
from `DCIM_SHARDS`. Nothing here guesses: a missing or inconsistent input is an error that says
which variable to set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from dcim.errors import ConfigError

_SPEC = re.compile(r"(\d+)\s*(?:/|-of-)\s*(\d+)")
_ORDINAL = re.compile(r"-(\d+)")

# Read by `--shard auto`, in this order (see docs/scale.md).
ENV_SHARD = "DCIM_SHARD"              # I/N or I-of-N (a systemd template sets it to %i)
ENV_INDEX = "DCIM_SHARD_INDEX"        # I (Kubernetes downward API: the pod-index label)
ENV_SHARDS = "DCIM_SHARDS"            # N (with DCIM_SHARD_INDEX or a pod name)
ENV_POD_NAMES = ("POD_NAME", "HOSTNAME")  # StatefulSet pods are named NAME-I


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, field: str = "--shard") -> Shard:
    """`I/N` or `I-of-N` (a systemd instance name) as a Shard; ConfigError naming `field`."""
    match = _SPEC.fullmatch(text.strip())
    if match is None:
        raise ConfigError([f"{field}: '{text}' is not I/N (or I-of-N) with 0 <= I < N"])
    return _checked(int(match.group(1)), int(match.group(2)), field, text)


def _checked(index: int, count: int, field: str, text: str) -> Shard:
    if not 0 <= index < count:
        raise ConfigError([f"{field}: '{text}' is not I/N (or I-of-N) with 0 <= I < N"])
    return Shard(index, count)


def shard_from_env(env: Mapping[str, str]) -> Shard:
    """The shard `--shard auto` means in this environment (see the module docstring)."""
    if env.get(ENV_SHARD):
        return parse_shard(env[ENV_SHARD], ENV_SHARD)
    count_text = env.get(ENV_SHARDS)
    if not count_text:
        raise ConfigError([
            f"--shard auto: set {ENV_SHARD}=I/N (systemd: Environment={ENV_SHARD}=%i in "
            f"dcim@.service), or {ENV_SHARDS}=N with {ENV_INDEX} or a StatefulSet pod name "
            f"(NAME-I) in {' or '.join(ENV_POD_NAMES)}"])
    if not count_text.isdigit():
        raise ConfigError([f"{ENV_SHARDS}: '{count_text}' is not a whole number"])
    count = int(count_text)
    if env.get(ENV_INDEX):
        index_text = env[ENV_INDEX]
        if not index_text.isdigit():
            raise ConfigError([f"{ENV_INDEX}: '{index_text}' is not a whole number"])
        return _checked(int(index_text), count, ENV_INDEX, f"{index_text}/{count}")
    for name in ENV_POD_NAMES:
        pod = env.get(name)
        if not pod:
            continue
        match = _ORDINAL.search(pod)
        if match is None or match.end() != len(pod):
            raise ConfigError([f"{name}: '{pod}' does not end in a pod ordinal (-I); set "
                               f"{ENV_INDEX} or {ENV_SHARD}"])
        return _checked(int(match.group(1)), count, name, f"{pod} of {count}")
    raise ConfigError([f"--shard auto: {ENV_SHARDS} is set but neither {ENV_INDEX} nor a pod "
                       f"name ({' or '.join(ENV_POD_NAMES)}) says which shard this is"])


def resolve_shard(text: str | None, env: Mapping[str, str]) -> Shard | None:
    """The `--shard` option: None (the whole site), `auto`, or an explicit I/N."""
    if text is None:
        return None
    if text.strip() == "auto":
        return shard_from_env(env)
    return parse_shard(text)


def listen_for_shard(listen: str, shard: Shard | None) -> str:
    """`HOST:PORT+shard` is PORT plus the shard index (several shards on one host); else as is."""
    if not listen.endswith("+shard"):
        return listen
    host, sep, port = listen.removesuffix("+shard").rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError([f"--listen: '{listen}' is not HOST:PORT+shard"])
    if shard is None:
        raise ConfigError([f"--listen: '{listen}' needs --shard"])
    if int(port) + shard.index > 65535:
        raise ConfigError([f"--listen: port {port} + shard {shard.index} is above 65535"])
    return f"{host}:{int(port) + shard.index}"
