"""benchmarks/gpu_check.py without a GPU: one line saying a GPU is needed, and a non-zero exit."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the check runs for minutes")
def test_without_a_gpu_the_check_says_so_in_one_line():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "gpu_check needs a CUDA GPU and none is visible here: run it on a machine with one"
    ]
