"""The layer rule of docs/architecture.md, as import-linter contracts (pyproject.toml,
[tool.importlinter]): a package imports only from the layers below it, and the model
server only from the shared helpers and the model store."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout
