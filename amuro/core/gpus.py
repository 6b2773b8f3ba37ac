"""The NVIDIA GPUs this process may use, asked of the driver (NVML) rather than of torch.

Importing torch takes seconds; the sweep process (which only schedules cells) and the settings that resolve a
dtype before any model is loaded need to know whether there is a GPU at all, not to use one.
"""

from __future__ import annotations

import os

from amuro.core.fields import split_list


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every GPU the NVIDIA driver reports
    (none without a driver)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return split_list(os.environ["CUDA_VISIBLE_DEVICES"])
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        return [str(index) for index in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()
