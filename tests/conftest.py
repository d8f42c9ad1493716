"""Fixtures that run real servers (see support/servers.py) on free loopback ports.

Layout: tests/unit/ runs no server or process (`scripts/test --unit`); tests/live/ runs real
servers (snmpd, snmpsim, Mosquitto, Prometheus, ...); tests/support/ holds the helpers both use;
tests/fixtures/ the device recordings and goldens. No test module imports another.

Factories (`*_factory`) are function-scoped: every call starts a fresh server in its own tmp
directory, and everything a test started is stopped (SIGTERM, then SIGKILL) and reaped at its
teardown, pass or fail. When a test fails, the log tails of its servers are attached to the
report. Session-scoped servers (`*_session`) are shared: use unique topics / metric names there,
and never stop them.

A missing binary makes the test error with the Debian package to install; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.registry import SNMP_V3_USER, ServerRegistry
from support.servers import (
    AlertmanagerServer,
    ManagedServer,
    MosquittoServer,
    NatsMqttServer,
    PrometheusServer,
    SnmpdServer,
    SnmpsimServer,
    SushyStaticServer,
    VictoriaMetricsServer,
    WebhookReceiver,
    promtool_binary,
    write_snmprec,
)

from dcim.sim.child import SimulatorProcess

# test_servers.py runs an inner pytest session to prove teardown on failure.
pytest_plugins = ["pytester"]


_SERVERS_KEY = pytest.StashKey[list[ManagedServer]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/live/ carries the `live` marker (`-m "not live"` leaves it out)."""
    for item in items:
        if "live" in item.path.parts[-2:-1]:
            item.add_marker(pytest.mark.live)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the log tails of a failed test's servers to its report."""
    report = yield
    servers = item.stash.get(_SERVERS_KEY, [])
    if report.failed and servers:
        for server in servers:
            report.sections.append(
                (f"{server.name} log ({server.log_path})", server.log_tail(60))
            )
    return report


@pytest.fixture
def server_registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Generator[ServerRegistry, None, None]:
    """Per-test registry of started servers; all are stopped at teardown."""
    registry = ServerRegistry(tmp_path_factory)
    request.node.stash[_SERVERS_KEY] = registry.servers
    yield registry
    registry.stop_all()


@pytest.fixture(scope="session")
def session_server_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Generator[ServerRegistry, None, None]:
    """Registry for servers shared by the whole session."""
    registry = ServerRegistry(tmp_path_factory)
    yield registry
    registry.stop_all()


# --- SNMP -------------------------------------------------------------------------------------



@pytest.fixture
def snmpd_factory(server_registry: ServerRegistry) -> Callable[..., SnmpdServer]:
    """make(communities=("public",), v3_users=(), overrides=(), values=None,
    extra_config=(), extra_args=(), start=True) -> SnmpdServer (see SnmpdServer's docstring)."""

    def make(*, start: bool = True, **kwargs: Any) -> SnmpdServer:
        return server_registry.add(SnmpdServer(server_registry.workdir("snmpd"), **kwargs), start)

    return make


@pytest.fixture
def snmpd(snmpd_factory: Callable[..., SnmpdServer]) -> SnmpdServer:
    """snmpd with v2c community 'public' and the v3 authPriv user SNMP_V3_USER."""
    return snmpd_factory(v3_users=[SNMP_V3_USER])


@pytest.fixture
def snmpsim_factory(server_registry: ServerRegistry) -> Callable[..., SnmpsimServer]:
    """make(data_dir=None, records=None, extra_args=(), start=True) -> SnmpsimServer.

    `data_dir`: a directory of .snmprec files (community = file stem), served read-only.
    `records`: {community: snmprec text or [(oid, tag, value), ...]} written to a tmp data dir.
    """

    def make(
        data_dir: Path | None = None,
        *,
        records: Mapping[str, str | Iterable[tuple[str, int | str, Any]]] | None = None,
        extra_args: Sequence[str] = (),
        start: bool = True,
    ) -> SnmpsimServer:
        workdir = server_registry.workdir("snmpsim")
        if records:
            data_dir = workdir / "data"
            for community, recs in records.items():
                write_snmprec(data_dir, community, recs)
        if data_dir is None:
            raise ValueError("snmpsim_factory needs data_dir or records")
        return server_registry.add(SnmpsimServer(workdir, data_dir, extra_args=extra_args), start)

    return make


# --- Redfish --------------------------------------------------------------------------------


@pytest.fixture
def sushy_static_factory(server_registry: ServerRegistry) -> Callable[..., SushyStaticServer]:
    """make(mockup_dir, cert_file=None, key_file=None, start=True) -> SushyStaticServer."""

    def make(mockup_dir: Path, *, start: bool = True, **kwargs: Any) -> SushyStaticServer:
        workdir = server_registry.workdir("sushy-static")
        return server_registry.add(SushyStaticServer(workdir, mockup_dir, **kwargs), start)

    return make


# --- MQTT -------------------------------------------------------------------------------------


@pytest.fixture
def mosquitto_factory(server_registry: ServerRegistry) -> Callable[..., MosquittoServer]:
    """make(users=None, allow_anonymous=None, extra_config=(), start=True) -> MosquittoServer.

    With `users` ({name: password}) anonymous access is off unless allow_anonymous=True.
    """

    def make(*, start: bool = True, **kwargs: Any) -> MosquittoServer:
        return server_registry.add(MosquittoServer(server_registry.workdir("mosquitto"), **kwargs), start)

    return make


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoServer]) -> MosquittoServer:
    """An anonymous broker of this test's own (safe to stop/start)."""
    return mosquitto_factory()


@pytest.fixture(scope="session")
def mosquitto_session(session_server_registry: ServerRegistry) -> MosquittoServer:
    """A broker shared by the session: use unique topics, never stop it."""
    return session_server_registry.add(MosquittoServer(session_server_registry.workdir("mosquitto")))


@pytest.fixture
def nats_mqtt(server_registry: ServerRegistry) -> NatsMqttServer:
    """A nats-server of this test's own with JetStream and an MQTT 3.1.1 listener (its .port)."""
    return server_registry.add(NatsMqttServer(server_registry.workdir("nats")), True)


# --- Prometheus / Alertmanager ----------------------------------------------------------------


@pytest.fixture
def prometheus_factory(server_registry: ServerRegistry) -> Callable[..., PrometheusServer]:
    """make(targets=(), job="dcim", metrics_path="/metrics", scrape_interval="1s",
    evaluation_interval="1s", scrape_configs=(), rules=None, rule_files=(), alertmanagers=(),
    extra_args=(), start=True) -> PrometheusServer.

    `targets` are host:port strings; `rules` is {filename: rules YAML text};
    `alertmanagers` are host:port (or http://host:port) strings.
    """

    def make(*, start: bool = True, **kwargs: Any) -> PrometheusServer:
        return server_registry.add(PrometheusServer(server_registry.workdir("prometheus"), **kwargs), start)

    return make


@pytest.fixture
def alertmanager_factory(server_registry: ServerRegistry) -> Callable[..., AlertmanagerServer]:
    """make(config=None, extra_args=(), start=True) -> AlertmanagerServer.

    `config` is alertmanager.yml text; servers.alertmanager_config(webhook_url) builds one.
    """

    def make(
        config: str | None = None, *, start: bool = True, **kwargs: Any
    ) -> AlertmanagerServer:
        workdir = server_registry.workdir("alertmanager")
        return server_registry.add(AlertmanagerServer(workdir, config, **kwargs), start)

    return make


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of the promtool binary."""
    return promtool_binary()


# --- VictoriaMetrics --------------------------------------------------------------------------


@pytest.fixture
def victoria_metrics_factory(server_registry: ServerRegistry) -> Callable[..., VictoriaMetricsServer]:
    """make(retention_period="100y", extra_args=(), start=True) -> VictoriaMetricsServer."""

    def make(*, start: bool = True, **kwargs: Any) -> VictoriaMetricsServer:
        workdir = server_registry.workdir("victoria-metrics")
        return server_registry.add(VictoriaMetricsServer(workdir, **kwargs), start)

    return make


@pytest.fixture
def victoria_metrics(
    victoria_metrics_factory: Callable[..., VictoriaMetricsServer],
) -> VictoriaMetricsServer:
    """A VictoriaMetrics of this test's own (safe to stop/start)."""
    return victoria_metrics_factory()


@pytest.fixture(scope="session")
def victoria_metrics_session(session_server_registry: ServerRegistry) -> VictoriaMetricsServer:
    """A VictoriaMetrics shared by the session: use unique metric names, never stop it."""
    workdir = session_server_registry.workdir("victoria-metrics")
    return session_server_registry.add(VictoriaMetricsServer(workdir))


# --- webhook ----------------------------------------------------------------------------------


@pytest.fixture
def webhook_factory() -> Generator[Callable[..., WebhookReceiver], None, None]:
    """make(status=200, get_body=b"") -> WebhookReceiver; all are closed at teardown."""
    made: list[WebhookReceiver] = []

    def make(status: int = 200, get_body: bytes = b"") -> WebhookReceiver:
        receiver = WebhookReceiver(status=status, get_body=get_body)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def webhook(webhook_factory: Callable[..., WebhookReceiver]) -> WebhookReceiver:
    """An HTTP receiver recording POST bodies (Alertmanager webhook target)."""
    return webhook_factory()


# --- the simulator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frozen_tiny(tmp_path_factory: pytest.TempPathFactory) -> Generator[SimulatorProcess, None, None]:
    """`dcim simulate tiny --frozen`, one per test module: the site held at one instant, so
    dcim's numbers can be compared exactly."""
    workdir = tmp_path_factory.mktemp("sim")
    sim = SimulatorProcess.start("tiny", workdir / "sim.yaml", extra=("--frozen",))
    yield sim
    sim.stop()


@pytest.fixture
def tiny(tmp_path: Path) -> Generator[SimulatorProcess, None, None]:
    """`dcim simulate tiny` in real time, one per test (tests change its loads and faults)."""
    sim = SimulatorProcess.start("tiny", tmp_path / "sim.yaml")
    try:
        yield sim
    finally:
        sim.stop()
