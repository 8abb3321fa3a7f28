"""Loading and running the scripts in examples/ (not a package) from tests."""
import importlib.util
import subprocess
import sys

from conftest import REPO


def load_example(script):
    """An example script as a module, registered in sys.modules as an import would be (a
    dataclass in it resolves its annotations, and the CLI reads its field comments, through it)."""
    spec = importlib.util.spec_from_file_location(f"{script.stem}_example", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_smoke(script, out, *extra) -> tuple:
    """``script --smoke --out out`` in a subprocess from the repository; (out, stdout) once it exits 0."""
    result = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(out), *extra], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out, result.stdout
