"""A normal install works: build a wheel, install it into a fresh virtualenv, run `forget` without --method.

The default method comes from the recorded leaderboards shipped inside the package; a wheel that
left them out (or code that looked for them in the source tree) fails here, not on a user's machine.
The fresh environment sees this environment's dependencies (torch, numpy, ...) through a path file,
never the source tree: the check that ``unlearnkit`` is imported from the new environment guards it.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The built-in dataset at a size that trains in seconds; forget its training people 0, 5 and 6.
DATA = ["--dataset", "synthetic", "--set", "dataset.people=40", "--set", "dataset.min_images=3",
        "--set", "dataset.max_images=5"]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_forget_without_method_from_an_installed_wheel(tmp_path):
    # Build from a copy of what a source distribution holds, so the working tree gets no build/ or egg-info.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    wheels = tmp_path / "wheels"
    # Offline, with the setuptools the test extra installs (no build isolation: nothing is fetched).
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(wheels),
          str(source)], tmp_path, env)
    (wheel,) = wheels.glob("unlearnkit-*.whl")

    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    fresh_site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                              text=True, env=env).strip())
    # The dependencies come from this environment's site-packages, as a plain path: its .pth files
    # (the editable install's pointer at src/) are not processed.
    deps = [p for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
            if Path(p).is_dir()]
    (fresh_site / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(python), "-c", "import unlearnkit; print(unlearnkit.__file__)"], work, env).stdout.strip()
    assert Path(where).resolve().is_relative_to(fresh.resolve()), where
    cli = str(fresh / "bin" / "unlearnkit")
    _run([cli, "train", *DATA, "--model", "test_small_cnn", "--set", "train.epochs=2", "--set", "train.precision=fp32",
          "--out", "orig"], work, env)
    done = _run([cli, "forget", "--checkpoint", "orig/models/seed_0000.safetensors", *DATA, "--identities", "0,5,6",
                 "--cache-dir", "cache", "--out", "erase"], work, env)

    audit = json.loads((work / "erase" / "audit.json").read_text())
    method = audit["method"]
    assert method["name"] and method["leaderboard"], method
    assert "recorded leaderboard" in method["chosen_because"] and method["leaderboard"] in method["chosen_because"]
    assert method["name"] in done.stdout and (work / "erase" / "audit.html").is_file()
