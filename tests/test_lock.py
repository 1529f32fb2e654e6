"""The pinned environment: requirements.lock covers every declared dependency, envs/robinterp.yaml
pins the same versions, and the environment the tests run in holds exactly the locked versions."""

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert m, f"not an exact pin: {line!r}"
            out[canonicalize_name(m[1])] = m[2]
    return out


def test_lock_pins_every_declared_dependency_exactly():
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is declared but not in requirements.lock: run make lock"
        assert req.specifier.contains(lock[name], prereleases=True), (req, lock[name])


def test_conda_env_pins_the_locked_versions():
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    env = yaml.safe_load((ROOT / "envs/robinterp.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = _pins(pip)
    runtime = [
        canonicalize_name(Requirement(t).name)
        for t in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ]
    assert set(runtime) <= set(conda_pins)
    for name, version in conda_pins.items():
        assert lock.get(name) == version, (name, version, lock.get(name))


def test_the_installed_packages_are_the_locked_versions():
    """What `make install` promises: every package of requirements.lock installed at its pinned version
    (a local build tag such as torch's +cu126 aside)."""
    from importlib import metadata

    from packaging.version import Version

    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    installed = {canonicalize_name(d.metadata["Name"]): Version(d.version).public for d in metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, version in lock.items() if installed.get(name) != version}
    assert not wrong, f"(locked, installed): {wrong}; run make install"
