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
