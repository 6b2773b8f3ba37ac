"""The torch side of ``--dtype`` (``amuro.core.precision``): dtypes to load in, TF32, the dtype a model is kept in.

fp32 matrix multiplications run in TF32 on GPUs that have it (Ampere and later: about 8x the fp32 rate at a
10-bit mantissa, the rounding bf16 mixed precision already accepts); the CPU keeps exact fp32.
"""

from __future__ import annotations

from amuro.core.precision import STORED


def torch_dtype(name: str):
    """The ``dtype`` argument of ``from_pretrained`` for a resolved dtype name (``stored``: the checkpoint's)."""
    import torch

    return "auto" if name == STORED else getattr(torch, name)


def tf32_available() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def use_tf32(enabled: bool = True) -> None:
    """fp32 matmuls and convolutions in TF32 (``enabled``) or full fp32, on GPUs that have TF32."""
    import torch

    if not tf32_available():
        return
    precision = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision


def on_device(model, dtype_name: str):
    """The model on the GPU when there is one (TF32 on for its fp32 matmuls), in ``dtype_name`` unless that is
    ``stored``."""
    import torch

    if dtype_name != STORED:
        model = model.to(getattr(torch, dtype_name))
    if torch.cuda.is_available():
        use_tf32()
        if next(model.parameters()).device.type == "cpu":
            model = model.to("cuda")
    return model


def in_trained_dtype(model, precision: str):
    """A tuned model as it is stored: in the 16-bit dtype it was trained in (half the bytes of its fp32 master
    weights), else in fp32."""
    import torch

    return model.to(getattr(torch, precision)) if precision in ("bfloat16", "float16") else model
