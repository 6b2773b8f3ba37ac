"""``--config FILE``: settings from a YAML (or JSON) file, the options given on the command line on top."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from amuro.cli import main
from amuro.core.options import settings_from_options
from amuro.core.settings import FinetuneSettings, SweepSettings


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_file_values_by_option_or_field_name_then_flags_on_top(tmp_path):
    config = write(tmp_path, "epochs: 1\neval-shots: 2\nlr: 1.0e-3\neval: false\ntrain: {max_train_examples: 16}\n")
    cfg = settings_from_options(FinetuneSettings, {"epochs": "3"}, config)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.max_train_examples) == (3, 1e-3, 16)
    assert cfg.eval.shots == 2 and cfg.evaluate is False
    assert cfg.train.batch_size == 4  # left to the preset, as without a file
    sweep = settings_from_options(SweepSettings, {}, write(tmp_path, "train_seed: 3\nseed: 5\nlora_r: 4\n"))
    assert (sweep.train.seed, sweep.eval.seed, sweep.train.lora_r) == (3, 5, 4)


def test_a_settings_document_round_trips_and_is_checked_for_its_entry_point(tmp_path):
    cfg = FinetuneSettings(dataset="synth-qgen", train={"lora": True, "epochs": 1})
    document = write(tmp_path, cfg.to_json())
    assert settings_from_options(FinetuneSettings, {}, document) == cfg
    assert settings_from_options(FinetuneSettings, {"dataset": "synth-nli"}, document).dataset == "synth-nli"
    result = CliRunner().invoke(main, ["sweep", "--settings-file", str(document)])
    assert result.exit_code != 0 and "is for 'finetune', not 'sweep'" in result.output


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- epochs: 1\n", "holds a list, not a mapping"),
        ("just words\n", "holds a str, not a mapping"),
        ("epochs: [1\n", "is not YAML"),
        ("epoch: 1\n", "unknown finetune setting 'epoch': did you mean epochs"),
        ("epochs: many\n", "epochs takes a whole number"),
        ("epochs: [1, 2]\n", "epochs takes a whole number"),
        ("epochs: 1.5\n", "epochs takes a whole number"),
        ("lora: maybe\n", "lora takes true or false"),
        ("eval: {shots: 1, colour: red}\n", "unknown eval setting 'colour'"),
        ("train: 3\n", "train in config file"),
        (json.dumps({"entry_point": "finetune", "settings": [1]}), "not a mapping of settings"),
        (json.dumps({"entry_point": "finetune", "extra": 1}), "holds only `settings`"),
    ],
)
def test_a_bad_file_is_one_line_and_a_non_zero_exit(tmp_path, text, says):
    result = CliRunner().invoke(main, ["finetune", "--config", str(write(tmp_path, text))])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1, result.output
