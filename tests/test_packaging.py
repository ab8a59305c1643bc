"""The built wheel installs cli/ and integrations/ under the package namespace and imports cleanly."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_imports_every_module_under_the_package_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist")], check=True)
    (wheel,) = (tmp_path / "dist").glob("llm2vec_plugins-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    assert not (target / "cli").exists() and not (target / "integrations").exists()
    assert (target / "llm2vec_plugins" / "cli" / "main.py").is_file()
    assert (target / "llm2vec_plugins" / "integrations" / "__init__.py").is_file()
    script = f"""
import importlib, pkgutil, sys
import llm2vec_plugins
assert llm2vec_plugins.__file__.startswith({str(target)!r}), llm2vec_plugins.__file__
names = [m.name for m in pkgutil.walk_packages(llm2vec_plugins.__path__, "llm2vec_plugins.")]
for name in names:
    module = importlib.import_module(name)
    assert module.__file__.startswith({str(target)!r}), module.__file__
print(len(names))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) >= 10
