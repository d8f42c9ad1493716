"""The files dcim ships beside its code, and `dcim assets export` that writes them out.

alerts/ (Prometheus rules, their promtool tests, the Alertmanager example and templates),
dashboards/ (Grafana dashboards and provisioning) and deploy/ (systemd units, Kubernetes
manifests) are installed with the package (pyproject: the wheel's force-include puts them
under dcim/share/); a source checkout or editable install finds them at the repository's top,
as `profile.builtin_profile_dir()` finds collectors/.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

ASSET_DIRS = ("alerts", "dashboards", "deploy")


def assets_root() -> Path:
    """The directory holding alerts/, dashboards/ and deploy/ (in the wheel, or the repo)."""
    packaged = Path(__file__).parent / "share"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent


def asset_files(root: Path | None = None) -> list[Path]:
    """Every shipped file, relative to the assets root, sorted."""
    root = root or assets_root()
    return sorted(path.relative_to(root) for name in ASSET_DIRS
                  for path in (root / name).rglob("*") if path.is_file())


@dataclass
class Export:
    """What an export did; when refused, nothing was written."""

    created: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)  # already there, same content
    differing: list[Path] = field(default_factory=list)  # already there, other content
    refused: bool = False  # files differ and force was not given

    @property
    def written(self) -> list[Path]:
        """The files this export wrote."""
        return [] if self.refused else sorted([*self.created, *self.differing])


def export_assets(dest: Path, force: bool = False, root: Path | None = None) -> Export:
    """Copy every asset under dest, keeping the layout (the rule tests name ../rules/...).

    A file already there with the same content is left alone; one with other content stops
    the export before anything is written, unless force says to overwrite it.
    """
    root = root or assets_root()
    result = Export()
    for rel in asset_files(root):
        target = dest / rel
        if not target.exists():
            result.created.append(rel)
        elif target.is_file() and target.read_bytes() == (root / rel).read_bytes():
            result.unchanged.append(rel)
        else:
            result.differing.append(rel)
    result.refused = bool(result.differing) and not force
    for rel in result.written:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest / rel)
    return result
