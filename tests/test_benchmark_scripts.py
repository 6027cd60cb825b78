"""Every script in benchmarks/ and tools/ still imports against today's package: ``--help`` runs its imports and
its argument parser without doing any work. (Three benchmarks once imported a function from a module it had left,
and nothing noticed until someone reran them.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

import support

SCRIPTS = sorted(
    path
    for folder in ("benchmarks", "tools")
    for path in (support.ROOT / folder).glob("*.py")
    if path.name != "common.py"
)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_script_imports_and_parses_its_arguments(script) -> None:  # noqa: ANN001
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower()
