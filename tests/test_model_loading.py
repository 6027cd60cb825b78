"""Loading a model is quick and leaves the model laid out as a freshly built one (issue #15's cold start)."""

from __future__ import annotations

import subprocess
import sys

import torch

from whisper_align import load_model
from whisper_align.model.whisper import Whisper


def test_loading_tiny_en_does_not_import_torchs_compiler_stack() -> None:
    # Meta-device init used to import torch._dynamo and sympy, which took longer than reading the weights.
    code = (
        "import sys, whisper_align; whisper_align.load_model('tiny.en'); "
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_loaded_weights_keep_the_layout_of_a_freshly_built_model() -> None:
    # Some weights are column-major on purpose (Linear(column_major=True)); loading must not make them contiguous.
    loaded = load_model("tiny.en")
    fresh = Whisper(loaded.dims)
    strides = {name: p.stride() for name, p in fresh.named_parameters()}
    assert any(s[0] == 1 and len(s) == 2 for s in strides.values())  # the test covers a column-major weight
    for name, param in loaded.named_parameters():
        assert param.stride() == strides[name], name
        assert torch.isfinite(param).all(), name


def spin_count(env: dict[str, str], first: str) -> str:
    code = f"import {first}, os; import whisper_align; print(os.environ.get('GOMP_SPINCOUNT'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return result.stdout.strip()


def test_importing_the_package_first_shortens_openmp_spinning_unless_the_user_chose() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert spin_count(env, "json") == "1000"
    assert spin_count({**env, "GOMP_SPINCOUNT": "7"}, "json") == "7"
    # once torch has loaded libgomp the setting would not apply, so it is not pretended
    assert spin_count(env, "torch") == "None"
