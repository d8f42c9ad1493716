"""The command line as a user meets it (dcim/cli.py, dcim/assets.py, dcim/demo.py's quit key).

`--version`, every command's `--help`, how `dcim poll` shows points, `dcim assets export`
from the source tree (the editable install; tests/live/test_wheel.py checks the wheel), and
the demo's `q` key on a pseudo-terminal. Typer's CliRunner runs the commands in-process.
"""

from __future__ import annotations

import asyncio
import os
import pty
import termios
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from dcim.assets import asset_files, assets_root
from dcim.cli import _print_poll, app
from dcim.demo import QUIT_KEYS, QUIT_SIGNAL, quit_key
from dcim.points import POINTS
from dcim.readings import PollResult

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_version_comes_from_the_package_metadata() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"dcim {version('dcim')}\n"


def _commands(group: Any, path: list[str]) -> list[list[str]]:
    """Every command path under a (click) group, the group itself included."""
    out = [path]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            out += _commands(command, [*path, name])
        else:
            out.append([*path, name])
    return out


def test_no_help_shows_a_flag_as_taking_a_value() -> None:
    commands = _commands(typer.main.get_command(app), [])
    assert ["assets", "export"] in commands and ["demo"] in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output and "--no-" not in result.output, (path, result.output)
    demo_help = runner.invoke(app, ["demo", "--help"]).output
    assert "--once " in demo_help and "--interval <float>" in demo_help


@pytest.mark.parametrize(("point", "value", "shown"), [
    ("on_battery", 1.0, "on battery"),
    ("on_battery", 0.0, "not on battery"),
    ("load_state", 2.0, "near overload"),
    ("leak", 1.0, "leak"),
    ("battery_charge_ratio", 0.87, "87 %"),
    ("load_ratio", 0.4321, "43.21 %"),
    ("power_factor", 0.95, "0.95"),  # a power factor is read as a number, not a share
    ("voltage_v", 230.5, "230.5 V"),
    ("supply_temp_c", 32.5, "32.5 °C"),
    ("load_state", 7.0, "7"),  # no name for it: the number, not a wrong name
])
def test_points_are_shown_plainly(point: str, value: float, shown: str) -> None:
    assert POINTS[point].show(value) == shown


def test_poll_output_names_states_and_shows_ratios_as_percentages(
        capsys: pytest.CaptureFixture[str]) -> None:
    result = PollResult(device="ups-1", time=0.0, duration=0.0123, values={
        "on_battery": 1.0, "battery_charge_ratio": 0.87, "voltage_v": {"1": 230.0, "2": 231.0},
    }, errors={"battery_low": "no such object"}, raw={"on_battery": 3})
    _print_poll(result, "ups-mib", "127.0.0.1", 161)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ups-1 (ups-mib at 127.0.0.1:161) up, 12 ms"
    assert lines[1:] == [
        "  battery_charge_ratio 87 %   (raw None)",
        "  battery_low          -   no such object   (raw None)",
        "  on_battery           on battery   (raw 3)",
        "  voltage_v            1: 230 V, 2: 231 V   (raw None)",
    ]


# --- dcim assets export --------------------------------------------------------------------


def test_assets_are_found_in_the_source_tree() -> None:
    assert assets_root() == REPO  # not packaged: the repository's own files
    files = {str(p) for p in asset_files()}
    for expected in ("alerts/rules/alerts.yml", "alerts/tests/pue_test.yml",
                     "alerts/alertmanager.example.yml", "alerts/alertmanager-templates/dcim.tmpl",
                     "dashboards/dcim-site-overview.json",
                     "dashboards/provisioning/dashboards/dcim.yml", "deploy/dcim.service"):
        assert expected in files


def test_assets_export_writes_every_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["assets", "export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for rel in asset_files():
        assert (tmp_path / "out" / rel).read_bytes() == (REPO / rel).read_bytes()
        assert f"wrote {tmp_path / 'out' / rel}\n" in result.stdout
    again = runner.invoke(app, ["assets", "export", str(tmp_path / "out")])
    assert again.exit_code == 0
    assert "wrote" not in again.stdout
    assert f"{len(asset_files())} files already there and the same" in again.stdout


def test_assets_export_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    runner.invoke(app, ["assets", "export", str(tmp_path)])
    unit = tmp_path / "deploy" / "dcim.service"
    unit.write_text("# edited by the site\n")
    missing = tmp_path / "alerts" / "rules" / "alerts.yml"
    missing.unlink()
    refused = runner.invoke(app, ["assets", "export", str(tmp_path)])
    assert refused.exit_code == 1
    assert "1 file in" in refused.stderr and "deploy/dcim.service" in refused.stderr
    assert unit.read_text() == "# edited by the site\n"
    assert not missing.exists()  # refused means nothing at all was written
    forced = runner.invoke(app, ["assets", "export", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert unit.read_bytes() == (REPO / "deploy" / "dcim.service").read_bytes()
    assert missing.read_bytes() == (REPO / "alerts" / "rules" / "alerts.yml").read_bytes()


def test_assets_export_into_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("")
    result = runner.invoke(app, ["assets", "export", str(target)])
    assert result.exit_code == 1
    assert result.stderr.startswith("dcim assets export: ")
    assert "Traceback" not in result.output


# --- the demo's quit key -------------------------------------------------------------------


async def test_q_on_a_terminal_quits_and_the_terminal_is_restored() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        quit_pressed = asyncio.Event()
        loop = asyncio.get_running_loop()
        with (os.fdopen(os.dup(slave), "r") as stdin,
              quit_key(loop, stdin, quit_pressed.set) as hint):
            assert hint == QUIT_KEYS
            lflag = termios.tcgetattr(slave)[3]
            assert not lflag & termios.ICANON and not lflag & termios.ECHO  # cbreak
            assert lflag & termios.ISIG  # Ctrl-C still interrupts
            os.write(master, b"x")
            await asyncio.sleep(0.1)
            assert not quit_pressed.is_set()  # other keys do nothing
            os.write(master, b"q")
            await asyncio.wait_for(quit_pressed.wait(), 5)
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


async def test_without_a_terminal_the_hint_names_ctrl_c(tmp_path: Path) -> None:
    with ((tmp_path / "stdin").open("w+") as stdin,
          quit_key(asyncio.get_running_loop(), stdin, lambda: None) as hint):
        assert hint == QUIT_SIGNAL


# --- the README a new user starts from ----------------------------------------------------


def test_readme_names_prerequisites_and_every_command() -> None:
    readme = (REPO / "README.md").read_text()
    top = readme.split("## ", 1)[0]
    assert "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/dcim demo" in top
    assert "\nscripts/test\n" in top
    prerequisites = top.split("Prerequisites:", 1)[1].split("\n\n", 1)[0]
    for needed in ("python3-venv", "git", "sudo"):
        assert needed in prerequisites
    assert "`scripts/test --unit`" in top and "minute" in top
    commands = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for path in _commands(typer.main.get_command(app), [])[1:]:
        if path != ["assets"]:
            assert f"dcim {' '.join(path)}" in commands, path
    assert "dcim --version" in commands
