"""Numeric precision of scoring and training: the ``--dtype`` setting and what ``auto`` resolves to.

``auto`` is bf16 on a CUDA GPU that supports it and fp32 everywhere else, so a CPU run (the embedded study)
predicts the same on every machine. Training always keeps fp32 master weights: a 16-bit dtype there means
autocast (mixed precision), never 16-bit weights, so a 2e-6 update does not round away. Under
``--protocol study`` on a GPU, ``auto`` is what the study's scripts did: training in bf16 mixed precision
(``accelerate launch --mixed_precision bf16``) and scoring in the checkpoint's own stored dtype (its
``load_hf_lm_and_tokenizer`` loads with ``torch_dtype="auto"``), resolved as ``stored``.

The resolved dtype is logged (``dtype`` param) and enters the run key unless it is fp32, so runs made before
the setting existed keep their keys, and a bf16 run on a GPU never reuses an fp32 run's results.
"""

from __future__ import annotations

from amuro.core.errors import UserError
from amuro.core.fields import setting
from amuro.core.gpus import visible_gpus

DTYPES = ("auto", "float32", "float16", "bfloat16")
STORED = "stored"  # the checkpoint's own dtype (transformers' dtype="auto"), the study's scoring dtype
FP32 = "float32"


def dtype_setting(purpose: str):
    what = "scored model" if purpose == "score" else "training autocast (fp32 master weights)"
    return setting(
        "auto",
        f"Precision of the {what}: auto (bfloat16 on a GPU that has it, else float32), float32, float16 or bfloat16.",
        choices=DTYPES,
    )


def cuda_bf16() -> tuple[bool, bool]:
    """(a CUDA GPU is visible, it computes in bf16); without an NVIDIA GPU in view, said without importing torch."""
    if not visible_gpus():
        return False, False
    import torch

    if not torch.cuda.is_available():
        return False, False
    return True, torch.cuda.is_bf16_supported()


def resolve_dtype(dtype: str, protocol: str, purpose: str) -> str:
    """What ``dtype`` means on this machine for ``purpose`` (``score`` or ``train``): a dtype name, or
    ``stored`` (study scoring on a GPU)."""
    if dtype != "auto":
        return dtype
    cuda, bf16 = cuda_bf16()
    if not cuda:
        return FP32
    if protocol == "study" and purpose == "score":
        return STORED
    return "bfloat16" if bf16 else FP32


def keyed(values: dict[str, object], resolved: str) -> dict[str, object]:
    """Key settings with ``dtype`` as resolved, left out when fp32 (the keys runs have always had)."""
    values = dict(values)
    values.pop("dtype", None)
    if resolved != FP32:
        values["dtype"] = resolved
    return values


def check_training_dtype(resolved: str) -> None:
    if resolved == "float16" and not cuda_bf16()[0]:
        raise UserError("float16 mixed-precision training needs a CUDA GPU: use --dtype bfloat16 or float32 here")
