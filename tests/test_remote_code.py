"""Repositories with their own model code: allenai/OLMo-1B (hf_olmo) refuses in one line without
--trust-remote-code; a small remote-code model loads through its own classes with it, and so does the model
tuned from it, which crosseval scores only when trusted."""

import json
import shutil

import pytest
import torch
from hubcache import write_hub_cache
from mlflow.tracking import MlflowClient
from transformers import AutoModelForCausalLM

from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.models import hub_listing
from amuro.models.series import hub_series, local_series, open_series

# allenai/OLMo-1B's config.json: hf_olmo's field names, model_type "olmo" (which transformers maps to its
# own Olmo classes, with other field names) and the auto_map naming the repository's code.
OLMO_1B_CONFIG = {
    "activation_type": "swiglu",
    "alibi": False,
    "alibi_bias_max": 8.0,
    "architectures": ["OLMoForCausalLM"],
    "attention_dropout": 0.0,
    "attention_layer_norm": False,
    "attention_layer_norm_with_affine": False,
    "auto_map": {
        "AutoConfig": "configuration_olmo.OLMoConfig",
        "AutoModelForCausalLM": "modeling_olmo.OLMoForCausalLM",
        "AutoTokenizer": ["tokenization_olmo_fast.OLMoTokenizerFast", "tokenization_olmo_fast.OLMoTokenizerFast"],
    },
    "bias_for_layer_norm": False,
    "block_group_size": 1,
    "block_type": "sequential",
    "d_model": 2048,
    "embedding_dropout": 0.0,
    "embedding_size": 50304,
    "eos_token_id": 50279,
    "flash_attention": False,
    "include_bias": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "layer_norm_type": "default",
    "layer_norm_with_affine": False,
    "max_sequence_length": 2048,
    "mlp_hidden_size": None,
    "mlp_ratio": 8,
    "model_type": "olmo",
    "multi_query_attention": False,
    "n_heads": 16,
    "n_layers": 16,
    "pad_token_id": 1,
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "rope": True,
    "rope_full_precision": True,
    "scale_logits": False,
    "transformers_version": "4.36.2",
    "vocab_size": 50280,
    "weight_tying": True,
}
OLMO_1B_FILES = {  # the repository's own code, as its tree holds it (never run here)
    "configuration_olmo.py": "from hf_olmo.configuration_olmo import OLMoConfig  # noqa\n",
    "modeling_olmo.py": "from hf_olmo.modeling_olmo import OLMoForCausalLM  # noqa\n",
    "tokenization_olmo_fast.py": "from hf_olmo.tokenization_olmo_fast import OLMoTokenizerFast  # noqa\n",
}
REMOTE_CONFIG = (
    "from transformers import OlmoConfig\n\n\nclass AmuroOlmoConfig(OlmoConfig):\n    model_type = 'amuro_olmo'\n"
)
REMOTE_MODEL = (
    "from transformers import OlmoForCausalLM\n\nfrom .configuration_amuro_olmo import AmuroOlmoConfig\n\n\n"
    "class AmuroOlmoForCausalLM(OlmoForCausalLM):\n    config_class = AmuroOlmoConfig\n"
)


def _olmo_1b_layout(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(OLMO_1B_CONFIG, indent=2))
    for name, text in OLMO_1B_FILES.items():
        (folder / name).write_text(text)
    return folder


def test_olmo_1b_without_trust_says_to_pass_it_or_use_the_hf_conversion(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    step = _olmo_1b_layout(tmp_path / "olmo-1b" / "step20000-tokens84B")
    with pytest.raises(UserError, match=r"^OLMo-1B needs its repository's own model code") as local:
        local_series(step.parent, name="OLMo-1B").checkpoints[0].load()
    assert "modeling_olmo.OLMoForCausalLM" in str(local.value) and "\n" not in str(local.value)
    assert "pass --trust-remote-code" in str(local.value)

    cache = tmp_path / "hub"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_listing, "list_repo_refs", write_hub_cache(step.parent, "allenai/OLMo-1B", cache))
    with pytest.raises(UserError, match="pass --trust-remote-code to run it, or use allenai/OLMo-1B-hf"):
        hub_series("allenai/OLMo-1B").get("main").load()


@pytest.fixture(scope="module")
def modules_cache(tmp_path_factory):
    """Where transformers copies a repository's code to import it from: one folder for the module's tests, as
    the package it imports from there stays imported."""
    import transformers.dynamic_module_utils as dynamic_modules

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamic_modules, "HF_MODULES_CACHE", str(tmp_path_factory.mktemp("modules")))
        yield


def _remote_code_series(small_series, folder):
    """The small series' last checkpoint as a repository with its own model code (``auto_map``); its folder."""
    source = local_series(small_series).checkpoints[-1]
    step = folder / "step40-tokens20480"
    shutil.copytree(source.location, step)
    (step / "configuration_amuro_olmo.py").write_text(REMOTE_CONFIG)
    (step / "modeling_amuro_olmo.py").write_text(REMOTE_MODEL)
    config = json.loads((step / "config.json").read_text())
    config |= {
        "model_type": "amuro_olmo",
        "architectures": ["AmuroOlmoForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_amuro_olmo.AmuroOlmoConfig",
            "AutoModelForCausalLM": "modeling_amuro_olmo.AmuroOlmoForCausalLM",
        },
    }
    (step / "config.json").write_text(json.dumps(config))
    return folder


def test_a_remote_code_model_loads_through_its_own_classes_only_when_trusted(small_series, tmp_path, modules_cache):
    remote = _remote_code_series(small_series, tmp_path / "remote")
    with pytest.raises(UserError, match="remote needs its repository's own model code.*--trust-remote-code"):
        open_series(str(remote)).checkpoints[0].load()
    model, tokenizer = open_series(str(remote), trust_remote_code=True).checkpoints[0].load()
    assert type(model).__name__ == "AmuroOlmoForCausalLM" and type(model).__module__.endswith("modeling_amuro_olmo")
    reference = AutoModelForCausalLM.from_pretrained(local_series(small_series).checkpoints[-1].location)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert tokenizer("a b").input_ids


def test_a_model_tuned_from_remote_code_keeps_it_and_crossevaluates_only_when_trusted(
    small_series, tracking_uri, tmp_path, modules_cache, capfd
):
    from click.testing import CliRunner

    from amuro.cli import main
    from amuro.commands.finetune import finetune
    from amuro.core.settings import FinetuneSettings
    from amuro.core.train_settings import TrainSettings
    from amuro.models.size import parameter_count
    from amuro.models.tuned import load_tuned

    remote = _remote_code_series(small_series, tmp_path / "remote")
    train = TrainSettings(epochs=1, max_train_examples=16)
    settings = dict(experiment="remote", model=str(remote), dataset="synth-nli", train=train, evaluate=False)
    run_id = finetune(FinetuneSettings(**settings, trust_remote_code=True))
    assert "Do you wish to run the custom code" not in "".join(capfd.readouterr())  # no question on the terminal
    tags = MlflowClient().get_run(run_id).data.tags
    assert int(tags["amuro.model_params"]) == parameter_count(local_series(small_series).checkpoints[-1].location)

    crosseval = ["crosseval", "--experiment", "remote", "--datasets", "synth-nli", "--formats", "default"]
    crosseval += ["--max-examples", "4", "--bootstrap", "50"]
    refused = CliRunner().invoke(main, crosseval)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert [line for line in refused.output.splitlines() if line.startswith("Error:")] == [
        f"Error: the model of finetune run {run_id} needs its repository's own model code "
        "(modeling_amuro_olmo.AmuroOlmoForCausalLM): pass --trust-remote-code to run it"
    ]
    trusted = CliRunner().invoke(main, [*crosseval, "--trust-remote-code"])
    assert trusted.exit_code == 0, trusted.output
    runs = MlflowClient().search_runs(
        [tracking.connect("remote")], f"tags.`amuro.kind` = 'eval' and tags.`amuro.source_run_id` = '{run_id}'"
    )
    assert [r.info.status for r in runs] == ["FINISHED"]
    model, _ = load_tuned(run_id, trust_remote_code=True)  # the tuned weights came with their code
    assert type(model).__name__ == "AmuroOlmoForCausalLM"
