"""Smoke tests proving each real-server fixture works: every server answers real requests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import servers as servers_module
from support.servers import (
    AlertmanagerServer,
    MissingBinaryError,
    MosquittoServer,
    PrometheusServer,
    SnmpdServer,
    SnmpsimServer,
    SnmpV3User,
    VictoriaMetricsServer,
    WebhookReceiver,
    alertmanager_config,
    free_port,
    net_snmp,
    parse_snmp_output,
    require_binary,
)

APC = ".1.3.6.1.4.1.318.1.1.12"
PX = ".1.3.6.1.4.1.13742.6.5.2.3.1.4"


def mqtt_tool(name: str) -> str:
    """mosquitto_pub/mosquitto_sub, or a failure naming their Debian package."""
    return require_binary(name, "mosquitto-clients")


def mqtt_pub(broker: MosquittoServer, topic: str, message: str, *args: str) -> None:
    """Publish one message with mosquitto_pub; fail with its stderr."""
    result = subprocess.run(
        [mqtt_tool("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port),
         "-t", topic, "-m", message, *args],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def mqtt_sub(broker: MosquittoServer, topic: str, count: int | None, *args: str) -> list[str]:
    """Receive `count` messages with mosquitto_sub (10 s limit); None: just subscribe (-E)."""
    limit = ["-E"] if count is None else ["-C", str(count)]
    result = subprocess.run(
        [mqtt_tool("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port),
         "-t", topic, *limit, "-W", "10", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"rc={result.returncode} {result.stderr}"
    return result.stdout.splitlines()


# --- helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_free_port_is_bindable(kind: str) -> None:
    port = free_port(kind)  # type: ignore[arg-type]
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind(("127.0.0.1", port))


def test_missing_binary_names_the_debian_package() -> None:
    with pytest.raises(MissingBinaryError, match=r"apt-get install -y no-such-pkg"):
        require_binary("no-such-binary-dcim", "no-such-pkg")


def test_start_retries_on_a_new_port_when_the_port_is_taken(
    monkeypatch: pytest.MonkeyPatch,
    mosquitto_factory: Callable[..., MosquittoServer],
    snmpd_factory: Callable[..., SnmpdServer],
) -> None:
    # Hand out a port somebody holds first: the race free_port() cannot rule out.
    real_free_port = free_port
    with socket.socket() as tcp_holder, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp_holder.bind(("127.0.0.1", 0))
        tcp_holder.listen()
        udp.bind(("127.0.0.1", 0))
        taken: dict[str, int] = {"tcp": tcp_holder.getsockname()[1], "udp": udp.getsockname()[1]}
        handed: list[str] = []

        def racy_free_port(kind: str = "tcp") -> int:
            if kind not in handed:
                handed.append(kind)
                return taken[kind]
            return real_free_port("udp" if kind == "udp" else "tcp")

        monkeypatch.setattr(servers_module, "free_port", racy_free_port)
        broker = mosquitto_factory()
        agent = snmpd_factory()
        assert broker.port != taken["tcp"] and broker.running
        assert agent.port != taken["udp"] and agent.running
        assert "Address already in use" in broker.log_path.read_text()
        mqtt_pub(broker, "race/ok", "1")
        assert agent.get(".1.3.6.1.2.1.1.5.0")


def test_snmpsim_retries_when_its_port_is_taken(
    monkeypatch: pytest.MonkeyPatch, snmpsim_factory: Callable[..., SnmpsimServer]
) -> None:
    # snmpsim does not exit when its bind fails: it logs "Listening at" and serves nothing.
    real_free_port = free_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        taken: int = holder.getsockname()[1]
        ports = iter([taken])

        def racy_free_port(kind: str = "udp") -> int:
            return next(ports, None) or real_free_port("udp")

        monkeypatch.setattr(servers_module, "free_port", racy_free_port)
        sim = snmpsim_factory(records={"c1": "1.3.6.1.2.1.1.5.0|4|x\n"})
        assert sim.port != taken and sim.starts == 2
        assert sim.owns_port()


def test_servers_are_stopped_when_a_test_fails(pytester: pytest.Pytester) -> None:
    tests = Path(__file__).resolve().parents[1]
    pytester.makeconftest((tests / "conftest.py").read_text())
    support = pytester.mkpydir("support")
    for name in ("servers.py", "registry.py"):
        (support / name).write_text((tests / "support" / name).read_text())
    pytester.makepyfile(
        test_inner="""
        from pathlib import Path

        def test_fails(mosquitto, snmpd):
            Path("pids").write_text(f"{mosquitto.process.pid} {snmpd.process.pid}")
            assert False, "deliberate"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mosquitto log*", "*snmpd log*"])  # log tails on failure
    for pid in (pytester.path / "pids").read_text().split():
        assert not Path(f"/proc/{pid}").exists(), f"server pid {pid} outlived its test"


# --- snmpd ------------------------------------------------------------------------------------


def test_snmpd_v2c_overrides_on_enterprise_oids(snmpd_factory: Callable[..., SnmpdServer]) -> None:
    agent = snmpd_factory(
        overrides=[
            (f"{APC}.2.3.1.1.2.1", "unsigned", 42),
            (f"{APC}.2.3.1.1.3.1", "integer", -5),
            (f"{APC}.1.1.0", "octet_str", '"AP8853 rack PDU"'),
            (f"{APC}.1.2.0", "octet_str", "0x01020a"),
            (f"{APC}.1.3.0", "counter", 7),
            (f"{APC}.1.4.0", "object_id", ".1.3.6.1.4.1.318"),
        ]
    )
    got = agent.get(
        f"{APC}.2.3.1.1.2.1", f"{APC}.2.3.1.1.3.1", f"{APC}.1.1.0", f"{APC}.1.2.0",
        f"{APC}.1.3.0", f"{APC}.1.4.0", ".1.3.6.1.2.1.1.5.0",
    )  # fmt: skip
    assert got == {
        f"{APC}.2.3.1.1.2.1": "Gauge32: 42",
        f"{APC}.2.3.1.1.3.1": "INTEGER: -5",
        f"{APC}.1.1.0": 'STRING: "AP8853 rack PDU"',
        f"{APC}.1.2.0": "Hex-STRING: 01 02 0A",
        f"{APC}.1.3.0": "Counter32: 7",
        f"{APC}.1.4.0": "OID: .1.3.6.1.4.1.318",
        ".1.3.6.1.2.1.1.5.0": 'STRING: "dcim-test-agent"',
    }
    walk = net_snmp("snmpwalk", "-On", *agent.v2c_args(), APC)
    assert list(parse_snmp_output(walk.stdout)) == [
        f"{APC}.1.1.0", f"{APC}.1.2.0", f"{APC}.1.3.0", f"{APC}.1.4.0",
        f"{APC}.2.3.1.1.2.1", f"{APC}.2.3.1.1.3.1",
    ]  # fmt: skip


def test_snmpd_override_rejects_types_snmpd_cannot_serve(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="values="):
        SnmpdServer(tmp_path, overrides=[(f"{APC}.1.0", "counter64", 1)])


def test_snmpd_values_counter64_ipaddress_and_live_changes(
    snmpd_factory: Callable[..., SnmpdServer],
) -> None:
    agent = snmpd_factory(
        values={
            f"{PX}.1.1.1": ("counter64", 2**64 - 1),
            f"{PX}.1.1.2": ("ipaddress", "10.20.30.40"),
            f"{PX}.1.1.3": ("gauge", 230),
            f"{PX}.1.1.4": ("octet", b"\x00\xff"),
            f"{APC}.2.3.1.1.2.1": ("integer", 17),
        }
    )
    assert agent.get(f"{PX}.1.1.1", f"{PX}.1.1.2", f"{PX}.1.1.3", f"{PX}.1.1.4") == {
        f"{PX}.1.1.1": "Counter64: 18446744073709551615",
        f"{PX}.1.1.2": "IpAddress: 10.20.30.40",
        f"{PX}.1.1.3": "Gauge32: 230",
        f"{PX}.1.1.4": "Hex-STRING: 00 FF",
    }
    agent.set_values({f"{PX}.1.1.3": ("gauge", 231), f"{PX}.1.1.5": ("string", "new row")})
    agent.delete_values(f"{PX}.1.1.1")
    walk = parse_snmp_output(net_snmp("snmpwalk", "-On", *agent.v2c_args(), PX).stdout)
    assert walk == {
        f"{PX}.1.1.2": "IpAddress: 10.20.30.40",
        f"{PX}.1.1.3": "Gauge32: 231",
        f"{PX}.1.1.4": "Hex-STRING: 00 FF",
        f"{PX}.1.1.5": 'STRING: "new row"',
    }
    assert agent.get(f"{APC}.2.3.1.1.2.1") == {f"{APC}.2.3.1.1.2.1": "INTEGER: 17"}
    with pytest.raises(ValueError, match="outside the subtrees"):
        agent.set_values({".1.3.6.1.4.1.9.1.0": ("integer", 1)})


ENGINE_ID, ENGINE_BOOTS = ".1.3.6.1.6.3.10.2.1.1.0", ".1.3.6.1.6.3.10.2.1.2.0"


def test_snmpd_v3_authpriv_and_restart_on_the_same_port(snmpd: SnmpdServer) -> None:
    oid = ".1.3.6.1.2.1.1.5.0"
    ok = net_snmp("snmpget", "-On", *snmpd.v3_args(), oid, ENGINE_ID, ENGINE_BOOTS)
    assert ok.returncode == 0, ok.stderr
    first = parse_snmp_output(ok.stdout)
    assert first[oid] == 'STRING: "dcim-test-agent"'
    assert first[ENGINE_BOOTS] == "INTEGER: 1"

    wrong = SnmpV3User(auth_key="wrong-secret-1")
    bad = net_snmp("snmpget", "-t", "1", "-r", "0", *snmpd.v3_args(wrong), oid)
    assert bad.returncode != 0 and "Authentication failure" in bad.stderr

    no_community = net_snmp("snmpget", "-t", "0.5", "-r", "0", *snmpd.v2c_args("nope"), oid)
    assert no_community.returncode != 0 and "Timeout" in no_community.stderr

    port = snmpd.port
    snmpd.stop()
    assert not snmpd.running
    down = net_snmp("snmpget", "-t", "0.5", "-r", "0", *snmpd.v2c_args(), oid)
    assert down.returncode != 0
    snmpd.start()
    assert snmpd.port == port
    again = net_snmp("snmpget", "-On", *snmpd.v3_args(), oid, ENGINE_ID, ENGINE_BOOTS)
    assert again.returncode == 0, again.stderr + snmpd.log_tail()
    after = parse_snmp_output(again.stdout)
    # Like a rebooted device: same engineID, one more boot.
    assert after[ENGINE_ID] == first[ENGINE_ID]
    assert after[ENGINE_BOOTS] == "INTEGER: 2"


def test_snmpd_v3_sha1_user(snmpd_factory: Callable[..., SnmpdServer]) -> None:
    user = SnmpV3User(name="legacy", auth_protocol="SHA", priv_protocol="AES")
    agent = snmpd_factory(communities=(), v3_users=[user])
    result = net_snmp("snmpget", "-On", *agent.v3_args(), ".1.3.6.1.2.1.1.5.0")
    assert result.returncode == 0, result.stderr


async def test_snmpd_v3_sha256_aes_with_pysnmp(snmpd: SnmpdServer) -> None:
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        get_cmd,
        usmAesCfb128Protocol,
        usmHMAC192SHA256AuthProtocol,
    )

    user = snmpd.v3_users[0]
    engine = SnmpEngine()
    try:
        error_indication, error_status, _, var_binds = await get_cmd(
            engine,
            UsmUserData(
                user.name,
                authKey=user.auth_key,
                privKey=user.priv_key,
                authProtocol=usmHMAC192SHA256AuthProtocol,
                privProtocol=usmAesCfb128Protocol,
            ),
            await UdpTransportTarget.create((snmpd.host, snmpd.port), timeout=2, retries=1),
            ContextData(),
            ObjectType(ObjectIdentity("1.3.6.1.2.1.1.5.0")),
        )
    finally:
        engine.close_dispatcher()
    assert error_indication is None and not error_status
    assert str(var_binds[0][1]) == "dcim-test-agent"


# --- snmpsim ----------------------------------------------------------------------------------


def test_snmpsim_serves_each_recording_under_its_community(
    snmpsim_factory: Callable[..., SnmpsimServer],
) -> None:
    sim = snmpsim_factory(
        records={
            "pdu-a": [
                ("1.3.6.1.2.1.1.5.0", 4, "pdu-a"),
                (f"{APC}.2.3.1.1.2.1".lstrip("."), 66, 42),
                (f"{PX}.1.1.1".lstrip("."), 70, 2**40),
            ],
            "pdu-b": "1.3.6.1.2.1.1.5.0|4|pdu-b\n",
        }
    )
    assert sim.communities == ["pdu-a", "pdu-b"]
    a = net_snmp("snmpget", "-On", *sim.v2c_args("pdu-a"), ".1.3.6.1.2.1.1.5.0", f"{PX}.1.1.1")
    assert parse_snmp_output(a.stdout) == {
        ".1.3.6.1.2.1.1.5.0": 'STRING: "pdu-a"',
        f"{PX}.1.1.1": f"Counter64: {2**40}",
    }, a.stderr
    b = net_snmp("snmpget", "-On", *sim.v2c_args("pdu-b"), ".1.3.6.1.2.1.1.5.0")
    assert parse_snmp_output(b.stdout) == {".1.3.6.1.2.1.1.5.0": 'STRING: "pdu-b"'}


# --- Mosquitto --------------------------------------------------------------------------------


def test_mosquitto_pub_sub_round_trip(mosquitto: MosquittoServer) -> None:
    mqtt_pub(mosquitto, "dcim/smoke", "hello", "-r", "-q", "1")
    assert mqtt_sub(mosquitto, "dcim/smoke", 1) == ["hello"]


def test_mosquitto_restart_keeps_queued_qos1_messages(mosquitto: MosquittoServer) -> None:
    session = ["-i", "dcim-persistent", "-c", "-q", "1"]  # -c: persistent session
    assert mqtt_sub(mosquitto, "dcim/queued", None, *session) == []  # subscribe, then leave
    for i in range(3):
        mqtt_pub(mosquitto, "dcim/queued", f"m{i}", "-q", "1")
    port = mosquitto.port
    mosquitto.stop()
    with socket.socket() as sock:  # the port really is released while the broker is down
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    mosquitto.start()
    assert mosquitto.port == port
    assert mqtt_sub(mosquitto, "dcim/queued", 3, *session) == ["m0", "m1", "m2"]


def test_mosquitto_password_auth(mosquitto_factory: Callable[..., MosquittoServer]) -> None:
    broker = mosquitto_factory(users={"dcim": "s3cret"})
    refused = subprocess.run(
        [mqtt_tool("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port),
         "-t", "x", "-m", "1"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "not authori" in refused.stderr.lower()
    mqtt_pub(broker, "x", "1", "-u", "dcim", "-P", "s3cret")


def test_mosquitto_session_broker_is_shared(mosquitto_session: MosquittoServer) -> None:
    mqtt_pub(mosquitto_session, f"dcim/session/{time.monotonic_ns()}", "1")


# --- Prometheus, Alertmanager, promtool --------------------------------------------------------

RULES = """\
groups:
  - name: smoke
    rules:
      - record: dcim_smoke_doubled
        expr: dcim_smoke_value * 2
      - alert: DcimSmokeHigh
        expr: dcim_smoke_value > 40
        labels: {severity: page}
        annotations: {summary: "smoke value {{ $value }}"}
"""


def test_promtool_runs_and_checks_rules(promtool: str, tmp_path: Path) -> None:
    version = subprocess.run([promtool, "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and "promtool" in version.stdout + version.stderr
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    check = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_alertmanager_delivers_to_webhook(
    alertmanager_factory: Callable[..., AlertmanagerServer], webhook: WebhookReceiver
) -> None:
    am = alertmanager_factory(alertmanager_config(webhook.url))
    am.post_alerts([{"labels": {"alertname": "DcimDirect", "rack": "r1"}}])
    body = webhook.wait_for(1)[0].json()
    assert body["status"] == "firing"
    assert body["alerts"][0]["labels"] == {"alertname": "DcimDirect", "rack": "r1"}
    assert [a["labels"]["alertname"] for a in am.alerts()] == ["DcimDirect"]


def test_prometheus_scrapes_records_and_alerts_through_alertmanager(
    prometheus_factory: Callable[..., PrometheusServer],
    alertmanager_factory: Callable[..., AlertmanagerServer],
    webhook_factory: Callable[..., WebhookReceiver],
) -> None:
    exporter = webhook_factory(get_body=b"# TYPE dcim_smoke_value gauge\ndcim_smoke_value 42\n")
    receiver = webhook_factory()
    am = alertmanager_factory(alertmanager_config(receiver.url))
    prom = prometheus_factory(
        targets=[f"{exporter.host}:{exporter.port}"], rules={"smoke.yml": RULES},
        alertmanagers=[am.address],
    )  # fmt: skip
    assert prom.wait_for("dcim_smoke_value")[0]["value"][1] == "42"
    assert prom.wait_for("dcim_smoke_doubled")[0]["value"][1] == "84"
    assert prom.targets_health()[0]["health"] == "up"
    alert = receiver.wait_for(1, timeout=60)[0].json()["alerts"][0]
    assert alert["labels"]["alertname"] == "DcimSmokeHigh"
    assert alert["annotations"]["summary"] == "smoke value 42"

    # reload() applies a changed config without a restart.
    second = webhook_factory(get_body=b"dcim_smoke_value 7\n")
    prom.targets = [f"{second.host}:{second.port}"]
    prom.reload()
    query = f'dcim_smoke_value{{instance="{second.host}:{second.port}"}}'
    assert prom.wait_for(query)[0]["value"][1] == "7"


# --- VictoriaMetrics --------------------------------------------------------------------------


def test_victoria_metrics_line_protocol_exactly_once_and_restart(
    victoria_metrics: VictoriaMetricsServer,
) -> None:
    t0 = time.time_ns() // 1_000_000 * 1_000_000  # VictoriaMetrics keeps milliseconds
    victoria_metrics.write_lines(
        f"pdu,rack=r1 watts=1200.5,amps=5.2 {t0}\npdu,rack=r1 watts=1201 {t0 + 10**9}\n"
    )
    series = victoria_metrics.wait_export(
        '{__name__="pdu_watts"}', lambda s: sum(len(x.values) for x in s) == 2, settle=2.0
    )
    assert [(s.metric, s.samples) for s in series] == [
        ({"__name__": "pdu_watts", "rack": "r1"}, [(t0 // 10**6, 1200.5), (t0 // 10**6 + 1000, 1201)])
    ]
    assert victoria_metrics.query("pdu_amps")[0]["value"][1] == "5.2"

    port = victoria_metrics.port
    victoria_metrics.stop()
    victoria_metrics.start()
    assert victoria_metrics.port == port
    again = victoria_metrics.export('{__name__="pdu_watts"}')
    assert [s.samples for s in again] == [s.samples for s in series]


def test_victoria_metrics_keeps_duplicates_visible(
    victoria_metrics_session: VictoriaMetricsServer,
) -> None:
    name = f"dup{time.monotonic_ns()}"
    ts = time.time_ns()
    for _ in range(2):
        victoria_metrics_session.write_lines(f"{name},a=b v=1 {ts}")
    series = victoria_metrics_session.wait_export(
        f'{{__name__="{name}_v"}}', lambda s: bool(s) and len(s[0].values) == 2
    )
    assert len(series[0].timestamps) == 2  # a retried write shows up twice


def test_victoria_metrics_accepts_influxdb_client_writes(
    victoria_metrics: VictoriaMetricsServer,
) -> None:
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=victoria_metrics.url, token="unused", org="dcim") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="dcim", record="rack_power,rack=r7 kw=11.5"
        )
    series = victoria_metrics.wait_export('{__name__="rack_power_kw"}')
    assert series[0].metric == {"__name__": "rack_power_kw", "rack": "r7"}
    assert series[0].values == [11.5]
