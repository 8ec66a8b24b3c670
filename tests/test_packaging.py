"""Set-up files agree with each other: README commands, .ci/run, constraints and environment.yml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines):
    return dict(re.match(r"\s*([A-Za-z0-9_.-]+)==(\S+)", line).groups() for line in lines if re.match(r"\s*[A-Za-z0-9_.-]+==", line))


def test_environment_yml_matches_constraints():
    constraints = {k.lower(): v for k, v in _pins((ROOT / "constraints.txt").read_text().splitlines()).items()}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = {k.lower(): v for k, v in _pins(pip_section).items()}
    assert env_pins, "environment.yml pins nothing"
    for name, version in env_pins.items():
        assert constraints.get(name) == version, f"{name}: environment.yml {version} vs constraints.txt {constraints.get(name)}"


def test_every_dependency_is_constrained():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    constraints = {k.lower() for k in _pins((ROOT / "constraints.txt").read_text().splitlines())}
    for dep in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower()
        assert name in constraints, f"{name} is not pinned in constraints.txt"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert len(blocks) >= 2
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci_lines == [blocks[1].strip()]
    assert "snakemake --cores 8 all" in blocks[0]
