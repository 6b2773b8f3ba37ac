"""The memory estimate before training: OLMo-1B at the study's micro-batch, and a setting refused in one line."""

from __future__ import annotations

from click.testing import CliRunner
from transformers import OlmoConfig, OlmoForCausalLM

from amuro.cli import main
from amuro.training import memory_plan
from amuro.training.memory_plan import GB, OLMO_1B, estimate, parameter_count


def test_parameters_from_the_config_are_the_models():
    small = OlmoConfig(**{**OLMO_1B, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2})
    small.num_attention_heads = 4
    assert parameter_count(small) == sum(p.numel() for p in OlmoForCausalLM(small).parameters())
    assert 1.17e9 < parameter_count(OlmoConfig(**OLMO_1B)) < 1.18e9


def test_olmo_1b_at_the_amuro_char_micro_batch_fits_one_80_gb_gpu_in_bf16_only():
    config = OlmoConfig(**OLMO_1B)
    params = parameter_count(config)

    def peak(mixed: bool, checkpointing: bool) -> float:
        plan = estimate(
            config,
            parameters=params,
            trainable=params,
            micro_batch=8,
            length=2048,
            mixed=mixed,
            checkpointing=checkpointing,
        )
        return plan.total / GB

    bf16, bf16_checkpointed, fp32 = peak(True, False), peak(True, True), peak(False, False)
    assert 55 < bf16 < 75 and fp32 > 80 and bf16_checkpointed < 40
    assert peak(False, True) < 80


def test_a_setting_that_cannot_fit_the_device_is_refused_in_one_line(tracking_uri, small_series, monkeypatch):
    monkeypatch.setattr(memory_plan, "device_memory", lambda: ("GPU Tiny", 2e6))
    arguments = ["--max-train-examples", "8", "--batch-size", "8", "--eval", "false"]
    result = CliRunner().invoke(main, ["finetune", "--experiment", "oom", "--model", small_series, *arguments])
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "fine-tuning needs about" in errors[0] and "GPU Tiny" in errors[0]
    assert "--gradient-checkpointing" in errors[0] and "--grad-accum" in errors[0] and "FSDP" in errors[0]
    assert "Traceback" not in result.output
