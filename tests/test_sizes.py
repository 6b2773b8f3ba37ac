"""Model size as an axis of the grid: a family of offline series of three widths, swept in one grid, and the
findings reported per size with their figure."""

import hashlib
import json
import subprocess

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from series_settings import SMALL_SERIES
from sweeps import _env, _finished, _runs, _sweep_argv

from amuro.cli import main
from amuro.commands.pretrain import pretrain
from amuro.core.errors import UserError
from amuro.core.settings import PretrainSettings, SweepSettings
from amuro.models.size import parameter_count
from analysis.cli import cli as analysis_cli

SIZES = ("1x", "2x", "4x")
FAMILY = [f"fam-{size}" for size in SIZES]
# The small series' settings, narrower and shorter: three widths of it train in seconds.
FAMILY_SETTINGS = {**SMALL_SERIES, "steps": 6, "num_checkpoints": 2, "hidden_size": 16}


def _png(client: MlflowClient, run_id: str, name: str) -> bytes:
    return open(client.download_artifacts(run_id, name), "rb").read()


@pytest.mark.slow
def test_sweep_over_three_sizes_reports_each_finding_per_size(tracking_uri, tmp_path):
    family = pretrain(PretrainSettings(series="fam", experiment="amuro-char", sizes=",".join(SIZES), **FAMILY_SETTINGS))
    argv = _sweep_argv(",".join(FAMILY), "--eval-datasets", "synth-nli", "--workers", "1", "--bootstrap", "200")
    swept = subprocess.run(argv, env=_env(tmp_path, tracking_uri), cwd=tmp_path, capture_output=True, text=True)
    assert swept.returncode == 0, swept.stderr[-3000:]

    runs = _runs(tracking_uri)
    pretrained = {r.data.tags["amuro.model"]: r for r in runs if r.data.tags.get("amuro.kind") == "pretrain"}
    assert sorted(pretrained) == FAMILY
    assert {r.data.tags.get("mlflow.parentRunId") for r in pretrained.values()} == {family}
    params = {name: int(run.data.params["parameters"]) for name, run in pretrained.items()}
    assert params["fam-1x"] < params["fam-2x"] < params["fam-4x"]
    finished = [r for r in runs if r.info.run_id in _finished(runs)]
    tracked = [r for r in finished if r.data.tags["amuro.kind"] in ("eval", "finetune")]
    # Every run carries its model's size, counted from the config the same as pretrain counted the weights.
    assert {(r.data.tags["amuro.model"], int(r.data.tags["amuro.model_params"])) for r in tracked} == set(
        params.items()
    )
    assert {r.data.tags["amuro.model"] for r in finished if r.data.tags["amuro.kind"] == "finetune"} == set(FAMILY)
    [sweep_run] = [r for r in finished if r.data.tags["amuro.kind"] == "sweep"]
    assert sweep_run.data.metrics["cells_done"] == sweep_run.data.metrics["cells_total"] == 3 * 6 + 1
    client = MlflowClient(tracking_uri)
    for name in FAMILY:  # each series' curve apart on the sweep run
        assert len(client.get_metric_history(sweep_run.info.run_id, f"{name}/base/synth-nli/default")) == 2

    # The sweep ends with the findings per series, then across sizes, smallest first.
    verdicts = swept.stdout.split("What these runs say of the study's four findings")[1]
    per_size = verdicts.split("Across model sizes")[1]
    for finding in ("(i) ", "(ii) ", "(iii) ", "(iv) "):
        block = per_size.split(finding)[1].split("\n\n")[0]
        assert all(block.count(f" {name}: ") == 2 for name in FAMILY), block  # under both definitions
    for name in FAMILY:
        assert verdicts.split("Across model sizes")[0].count(f" {name} [amuro] ") == 8  # 4 findings x 2 definitions
    assert per_size.index("fam-1x:") < per_size.index("fam-2x:") < per_size.index("fam-4x:")
    analysis_runs = [r for r in runs if r.data.tags.get("amuro.kind") == "analysis"]
    assert _png(client, analysis_runs[0].info.run_id, "finding-sizes.png").startswith(b"\x89PNG")

    mlflow.set_tracking_uri(tracking_uri)
    result = CliRunner().invoke(analysis_cli, ["findings", "--experiment", "amuro-char", "--log"])
    assert result.exit_code == 0, result.output
    assert result.output.count("Across model sizes") == 1 and all(f" {name}: " in result.output for name in FAMILY)
    logged = client.search_runs(
        [client.get_experiment_by_name("amuro-char").experiment_id],
        "tags.`amuro.kind` = 'analysis'",
        order_by=["attributes.start_time DESC"],
    )[0]
    assert _png(client, logged.info.run_id, "finding-sizes.png").startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["sweep", "--model", "tiny,x,tiny"], "Error: --model names tiny more than once: give each series once"),
        (["pretrain", "--sizes", "1x,big"], "Error: size 'big' is not a width multiple: give multiples of "),
        (
            ["pretrain", "--sizes", "1x,1.5x", "--hidden-size", "8", "--heads", "8"],
            "Error: size 1.5x makes the width 12, not divisible by heads (8)",
        ),
        (["sweep", "--model-file", "missing.yaml"], "Error: cannot read --model-file missing.yaml"),
    ],
)
def test_bad_sizes_and_repeated_series_are_one_line(tracking_uri, argv, error):
    result = CliRunner().invoke(main, argv)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(errors) == 1 and errors[0].startswith(error)


def test_model_file_lists_the_series(tmp_path):
    listed = tmp_path / "models.yaml"
    listed.write_text("models:\n  - EleutherAI/pythia-160m\n  - EleutherAI/pythia-410m\n")
    assert SweepSettings(model_file=str(listed)).model_list == ["EleutherAI/pythia-160m", "EleutherAI/pythia-410m"]
    assert SweepSettings(model="a, b,c").model_list == ["a", "b", "c"]
    listed.write_text("- a\n- 3\n")
    with pytest.raises(UserError, match="must be a YAML list of series"):
        SweepSettings(model_file=str(listed)).model_list


# EleutherAI/pythia-160m's config.json as the hub serves it; the model card gives 162,322,944 parameters in all
# (85,056,000 without the embeddings).
PYTHIA_160M_CONFIG = {
    "architectures": ["GPTNeoXForCausalLM"],
    "bos_token_id": 0,
    "eos_token_id": 0,
    "hidden_act": "gelu",
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048,
    "model_type": "gpt_neox",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "rotary_emb_base": 10000,
    "rotary_pct": 0.25,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.24.0",
    "use_cache": True,
    "use_parallel_residual": True,
    "vocab_size": 50304,
}


def test_parameter_count_of_a_hub_checkpoint_reads_its_config_alone(tmp_path, monkeypatch):
    from huggingface_hub import constants as hf_constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--EleutherAI--pythia-160m"
    commit = hashlib.sha1(b"step143000").hexdigest()
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text(json.dumps(PYTHIA_160M_CONFIG))  # no weights
    (repo / "refs").mkdir()
    (repo / "refs" / "step143000").write_text(commit)
    assert parameter_count("EleutherAI/pythia-160m", "step143000") == 162_322_944
    assert parameter_count(str(tmp_path / "nowhere")) is None  # unknown: an empty tag, never a failed run
