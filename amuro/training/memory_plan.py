"""Peak memory of a fine-tune, estimated before training, and a one-line refusal when it cannot fit.

The estimate adds what a decoder training step holds at its peak:

- weights: fp32 master weights (4 bytes a parameter), plus the 16-bit copies autocast caches in mixed precision;
- gradients (4 bytes) and AdamW's two moments (8 bytes) of each trainable parameter;
- activations kept for the backward pass, per token and layer: the normed inputs, q/k/v before and after the
  rotary embedding, the attention output (SDPA keeps no score matrix) and the four MLP intermediates of a
  gated MLP, ``8h + 4i`` values at the autocast width, plus the two layer norms' fp32 inputs (``8h`` bytes);
  with gradient checkpointing only each layer's input is kept, and one layer's activations are rebuilt at a time;
- logits: the lm head's output, its fp32 copy in the loss and its gradient (``vocab`` values each per token);

plus 5% for the allocator's fragmentation. At OLMo-1B's shape (1.18B parameters, h 2048, i 8192, 16
layers, vocabulary 50,304) and the ``amuro-char`` preset's micro-batch of 8 x 2048 tokens this is about 63 GB
in bf16 mixed precision (fits one 80 GB GPU), 33 GB with gradient checkpointing, and 89 GB in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

from amuro.core.errors import UserError
from amuro.core.train_settings import TrainSettings

GB = 1e9
FRAGMENTATION = 1.05
# allenai/OLMo-1B-hf's shape (its config.json), as transformers' OlmoConfig takes it
OLMO_1B = {
    "vocab_size": 50304,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}


@dataclass(frozen=True)
class MemoryPlan:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return FRAGMENTATION * (self.weights + self.gradients + self.optimizer + self.activations + self.logits)

    def parts(self) -> str:
        return (
            f"weights {self.weights / GB:.1f}, gradients {self.gradients / GB:.1f}, AdamW {self.optimizer / GB:.1f}, "
            f"activations {self.activations / GB:.1f}, logits {self.logits / GB:.1f} GB"
        )


def estimate(
    config,
    *,
    parameters: int,
    trainable: int,
    micro_batch: int,
    length: int,
    mixed: bool,
    checkpointing: bool,
) -> MemoryPlan:
    """Peak training memory in bytes of a decoder with this ``config`` (a transformers ``PretrainedConfig``)."""
    width = 2 if mixed else 4
    h, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    inner = getattr(config, "intermediate_size", None) or 4 * h
    tokens = micro_batch * length
    per_layer = width * (8 * h + 4 * inner) + 8 * h
    if checkpointing:
        activations = tokens * (layers * h * width + per_layer)
    else:
        activations = tokens * layers * per_layer
    return MemoryPlan(
        weights=parameters * (4 + (2 if mixed else 0)),
        gradients=trainable * 4,
        optimizer=trainable * 8,
        activations=activations,
        logits=tokens * vocab * (width + 8),
    )


def parameter_count(config) -> int:
    """Parameters of a Llama/OLMo-shaped decoder from its config alone (nothing instantiated)."""
    h, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    inner = getattr(config, "intermediate_size", None) or 4 * h
    kv = h * getattr(config, "num_key_value_heads", config.num_attention_heads) // config.num_attention_heads
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inner
    heads = 1 if getattr(config, "tie_word_embeddings", False) else 2
    return heads * vocab * h + layers * per_layer


def device_memory() -> tuple[str, float]:
    """(the training device, the bytes training may use there): free CUDA memory, else available RAM."""
    import torch

    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return f"GPU {torch.cuda.get_device_name()}", float(free)
    import psutil

    return "this machine's RAM", float(psutil.virtual_memory().available)


def check_fits(model, train: TrainSettings, longest: int) -> MemoryPlan:
    """Refuse, in one line saying what to change, a fine-tune whose estimated peak exceeds the device."""
    import torch

    length = min(longest, train.max_length or longest)
    params = list(model.parameters())
    parameters = sum(p.numel() for p in params)
    plan = estimate(
        model.config,
        parameters=parameters,
        trainable=sum(p.numel() for p in params if p.requires_grad),
        micro_batch=train.batch_size or 1,
        length=length,
        mixed=train.precision in ("bfloat16", "float16"),
        checkpointing=train.gradient_checkpointing,
    )
    device, budget = device_memory()
    if not torch.cuda.is_available():
        budget += parameters * 4  # the fp32 weights, loaded already, are part of the plan
    if plan.total > budget:
        fixes = [] if train.gradient_checkpointing else ["--gradient-checkpointing"]
        fixes += ["a smaller --batch-size with a larger --grad-accum (the same global batch)", "FSDP across GPUs"]
        raise UserError(
            f"fine-tuning needs about {plan.total / GB:.1f} GB at micro-batch {train.batch_size} x {length} tokens "
            f"({plan.parts()}) but {device} has {budget / GB:.1f} GB: use {', or '.join(fixes)}"
        )
    return plan
