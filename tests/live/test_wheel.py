"""The wheel a pip user installs carries the profiles and the assets (pyproject force-include).

Builds the wheel with pip (hatchling, as `pip install dcim` would), checks that every asset
of the source tree (dcim/assets.py) and every profile is inside it, then runs
`dcim assets export` from the unpacked wheel (not the source tree) and promtool's rule tests
on what it wrote, so the exported layout works as shipped.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.servers import promtool_binary

from dcim.assets import asset_files

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q",
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("dcim-*.whl")
    return built


def test_wheel_holds_profiles_and_assets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in asset_files():
        assert f"dcim/share/{rel}" in names
    profiles = [p.relative_to(REPO) for p in (REPO / "collectors").rglob("*.yaml")]
    assert profiles and all(f"dcim/{p}" in names for p in profiles)
    assert "dcim/share/deploy/dcim.service" in names


def test_assets_export_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    env = {**os.environ, "PYTHONPATH": str(unpacked)}  # before the editable install's source
    where = subprocess.run(
        [sys.executable, "-c", "from dcim.assets import assets_root; print(assets_root())"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(unpacked / "dcim" / "share")
    out = tmp_path / "assets"
    result = subprocess.run([sys.executable, "-m", "dcim", "assets", "export", str(out)],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for rel in asset_files():
        assert (out / rel).read_bytes() == (REPO / rel).read_bytes()
    # the rules load where the exported tests look for them (../rules/); tests/live/
    # test_alerts.py runs every rule test, one quick test file is enough to prove the layout
    rules = sorted(glob.glob(str(out / "alerts" / "rules" / "*.yml")))
    for args in (["check", "rules", *rules], ["test", "rules", "tests/pue_test.yml"]):
        promtool = subprocess.run([promtool_binary(), *args], cwd=out / "alerts",
                                  capture_output=True, text=True, timeout=300)
        assert promtool.returncode == 0, promtool.stdout + promtool.stderr
