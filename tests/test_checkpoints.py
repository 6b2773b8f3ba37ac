import json

import pytest
from hubcache import write_hub_cache
from transformers import AutoModelForCausalLM, AutoTokenizer

from amuro.core.errors import UserError
from amuro.models import hub_listing
from amuro.models import series as checkpoints
from amuro.models.series import hub_series, local_series, open_series, parse_revision


@pytest.mark.parametrize(
    "name, step, tokens",
    [
        ("step20000-tokens84B", 20000, 84_000_000_000),
        ("step738020-tokens3095B", 738020, 3_095_000_000_000),
        ("stage1-step10000-tokens42B", 10000, 42_000_000_000),
        ("step143000", 143000, None),
        ("step400-tokens819200", 400, 819200),
        ("main", None, None),
        ("refs-pr-3", None, None),
    ],
)
def test_parse_revision_on_real_branch_names(name, step, tokens):
    assert parse_revision(name) == (step, tokens)


def test_local_series_checkpoints_reload(small_series):
    series = local_series(small_series)
    assert len(series.checkpoints) >= 4
    steps = [c.step for c in series.checkpoints]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    for ckpt in series.checkpoints:
        assert ckpt.source_run_id and ckpt.tokens and ckpt.revision.startswith(f"step{ckpt.step}-tokens")
        AutoModelForCausalLM.from_pretrained(ckpt.location)
        AutoTokenizer.from_pretrained(ckpt.location)


def test_selection_by_count_steps_and_names(small_series):
    series = local_series(small_series)
    all_ = series.select("all")
    assert series.select("2") == [all_[0], all_[-1]]
    three = series.select(3)
    assert len(three) == 3 and three[0] == all_[0] and three[-1] == all_[-1]
    assert series.select(f"{all_[1].step},{all_[0].revision}") == [all_[1], all_[0]]
    assert series.select(f"step{all_[2].step}") == [all_[2]]
    assert all_[-1].step > len(all_) and series.select(str(all_[-1].step)) == [all_[-1]]  # beyond a count: a step
    with pytest.raises(UserError, match="checkpoint"):
        series.select(str(all_[-1].step + 1))
    assert series.get("main") == all_[-1]
    with pytest.raises(UserError, match="did you mean"):
        series.get(all_[0].revision + "x")


def test_hub_series_resolves_branches_offline(small_series, tmp_path, monkeypatch):
    names = ["step1000-tokens4B", "step2000-tokens8B", "step3000-tokens12B", "step4000-tokens16B"]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    fake = write_hub_cache(small_series, "amuro-test/olmo-mini", tmp_path, names)
    monkeypatch.setattr(hub_listing, "list_repo_refs", fake)
    series = hub_series("amuro-test/olmo-mini")
    assert [c.revision for c in series.select("all")] == names
    main = series.get("main")
    assert main.step == 4000 and main.tokens == 16_000_000_000
    assert series.get("2000").commit and series.get(2000).hub_revision == "step2000-tokens8B"
    model, tokenizer = series.get("step3000-tokens12B").load()
    expected = local_series(small_series).checkpoints[2]
    reference = AutoModelForCausalLM.from_pretrained(expected.location)
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert open_series("amuro-test/olmo-mini").name == "amuro-test/olmo-mini"


def test_unreachable_hub_repo_is_a_user_error(monkeypatch):
    def offline(repo, **kwargs):
        raise OSError("offline mode is enabled")

    monkeypatch.setattr(hub_listing, "list_repo_refs", offline)
    with pytest.raises(UserError, match="cannot list the branches of hub model org/none"):
        hub_series("org/none")


def test_series_from_pretrain_run_uri(small_series, tmp_path, monkeypatch):
    manifest = json.loads((checkpoints.Path(small_series) / "manifest.json").read_text())
    run_id = manifest["source_run_id"]
    import mlflow
    from mlflow.tracking import MlflowClient

    store = checkpoints.Path(small_series).parents[2]  # the session fixture's store holds the pretrain run
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    try:
        assert MlflowClient().get_run(run_id).data.tags["amuro.kind"] == "pretrain"
        monkeypatch.setenv("AMURO_HOME", str(tmp_path))
        series = open_series(f"runs:/{run_id}/series")
        assert [c.revision for c in series.checkpoints] == [e["revision"] for e in manifest["checkpoints"]]
        assert str(tmp_path) in series.checkpoints[0].location
        assert series.checkpoints[0].source_run_id == run_id
    finally:
        mlflow.set_tracking_uri(None)


def test_corrupt_checkpoint_folder_is_a_user_error(small_series, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(small_series, broken)
    first = local_series(broken).checkpoints[0]
    (checkpoints.Path(first.location) / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="failed to load"):
        local_series(broken).checkpoints[0].load()


def test_unknown_series_suggests_names(tracking_uri):
    from amuro.core import tracking

    experiment_id = tracking.connect("t")
    with pytest.raises(UserError, match="unknown model series.*tiny"):
        open_series("tinny", experiment_id=experiment_id)
    with pytest.raises(UserError, match="does not exist"):
        open_series("./no/such/folder")


# Real branches of allenai/OLMo-2-1124-7B (a few of stage 1's, stage 2's three ingredients at two steps, main:
# the model souped from the ingredients after stage 2, as its model card says).
OLMO2_BRANCHES = [
    "stage1-step15000-tokens63B",
    "stage1-step922000-tokens3868B",
    "stage1-step928646-tokens3896B",
    "stage2-ingredient3-step1000-tokens5B",
    "stage2-ingredient2-step1000-tokens5B",
    "stage2-ingredient1-step1000-tokens5B",
    "stage2-ingredient3-step11931-tokens50B",
    "stage2-ingredient2-step11931-tokens50B",
    "stage2-ingredient1-step11931-tokens50B",
    "main",
]
# Real branches of allenai/OLMo-1B: it has no step1000 nor step18000 branch.
OLMO1B_BRANCHES = [
    "step20000-tokens84B",
    "step30000-tokens126B",
    "step117850-tokens494B",
    "step342000-tokens1434B",
    "step424000-tokens1778B",
    "step505000-tokens2118B",
    "step592000-tokens2483B",
    "step737000-tokens3091B",
    "step738000-tokens3095B",
    "step738020-tokens3095B",
    "main",
]


def _branches(monkeypatch, names):
    from types import SimpleNamespace

    def list_repo_refs(repo_id):  # the real signature takes no revision
        return SimpleNamespace(
            branches=[SimpleNamespace(name=n, target_commit=f"c{i}") for i, n in enumerate(names)],
            tags=[],
            converts=[],
        )

    monkeypatch.setattr(hub_listing, "list_repo_refs", list_repo_refs)


def _olmo2(monkeypatch):
    _branches(monkeypatch, OLMO2_BRANCHES)
    return hub_series("allenai/OLMo-2-1124-7B")


def test_list_repo_refs_is_called_as_the_library_defines_it():
    import inspect

    import huggingface_hub

    assert "revision" not in inspect.signature(huggingface_hub.list_repo_refs).parameters
    assert "revision" not in inspect.signature(hub_series).parameters


def test_olmo2_main_is_the_souped_model_after_stage2_and_each_ingredient_its_own_checkpoint(monkeypatch):
    series = _olmo2(monkeypatch)
    assert [c.revision for c in series.select("all")] == OLMO2_BRANCHES[:3]
    main = series.get("main")
    assert (main.step, main.tokens, main.stage, main.ingredient) == (940577, 3_946_000_000_000, 2, None)
    assert series.last == main and main.label == "OLMo-2-1124-7B@step940577-stage2"
    assert series.select(2)[-1].revision == "stage1-step928646-tokens3896B"
    stage2 = series.select("stage2")
    assert [(c.step, c.tokens, c.ingredient) for c in stage2] == [
        (929646, 3_901_000_000_000, 1),
        (929646, 3_901_000_000_000, 2),
        (929646, 3_901_000_000_000, 3),
        (940577, 3_946_000_000_000, 1),
        (940577, 3_946_000_000_000, 2),
        (940577, 3_946_000_000_000, 3),
    ]
    last_step = [c for c in series.checkpoints if c.step == 940577]
    assert len(last_step) == 4 and len({c.label for c in last_step}) == 4 and len({c.revision for c in last_step}) == 4
    assert stage2[4].label == "OLMo-2-1124-7B@step940577-stage2-ingredient2"
    picked = series.select("15000,stage2-ingredient3-step11931-tokens50B")
    assert [c.revision for c in picked] == ["stage1-step15000-tokens63B", "stage2-ingredient3-step11931-tokens50B"]
    assert series.select("main,stage2") == [main, *stage2]
    with pytest.raises(UserError, match="no stage3 checkpoints: its stages are stage1, stage2"):
        series.select("stage3")

    from click.testing import CliRunner

    from amuro.cli import main as cli

    listed = CliRunner().invoke(cli, ["checkpoints", "--model", "allenai/OLMo-2-1124-7B", "--checkpoints", "stage2"])
    assert listed.exit_code == 0, listed.output
    rows = listed.output.splitlines()
    assert rows[0] == "series allenai/OLMo-2-1124-7B: 10 checkpoints, 6 selected by 'stage2'" and len(rows) == 12
    assert rows[-1].split() == ["main", "940577", "3.946T", "2", "allenai/OLMo-2-1124-7B@main"]
    assert rows[-2].split() == [
        "*",
        "stage2-ingredient3-step11931-tokens50B",
        "940577",
        "3.946T",
        "2",
        "ingredient",
        "3",
        "allenai/OLMo-2-1124-7B@stage2-ingredient3-step11931-tokens50B",
    ]


def test_study_checkpoints_map_to_the_nearest_branch_and_say_so(monkeypatch, capsys):
    _branches(monkeypatch, OLMO1B_BRANCHES)
    series = hub_series("allenai/OLMo-1B")
    chosen = series.select("study")
    assert [c.revision for c in chosen] == [
        "step20000-tokens84B",
        "step342000-tokens1434B",
        "step424000-tokens1778B",
        "step505000-tokens2118B",
        "step592000-tokens2483B",
        "step738000-tokens3095B",
        "main",
    ]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "study checkpoint step1000 -> step20000-tokens84B (nearest: step 20000)"
    assert lines[1] == "study checkpoint step18000 -> step20000-tokens84B (nearest; already taken)"
    assert "study checkpoint step342000 -> step342000-tokens1434B" in lines
    assert lines[-1] == "study checkpoint main -> main"
    assert len(lines) == 8
    olmo2 = _olmo2(monkeypatch).select("study")  # stage 1 carries the steps; main is the souped model
    assert olmo2[-1].revision == "main" and olmo2[0].revision == "stage1-step15000-tokens63B"


def test_study_checkpoints_on_a_short_local_series(small_series, capsys):
    series = local_series(small_series)
    chosen = series.select("study")
    assert chosen == [series.last]  # every study step is nearest the series' last (step 40)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"study checkpoint step1000 -> {series.last.revision} (nearest: step {series.last.step})"
    assert len(out) == 8 and out[-1] == f"study checkpoint main -> {series.last.revision} (nearest; already taken)"


def test_a_sweep_over_olmo2_plans_each_ingredient_and_main_as_cells_of_their_own(monkeypatch):
    from pathlib import Path

    from amuro.commands.sweep import plan
    from amuro.core.settings import SweepSettings

    series = _olmo2(monkeypatch)
    chosen = series.select("stage1-step928646-tokens3896B,main,stage2")[:1] + series.checkpoints[-4:]
    cfg = SweepSettings(experiment="s", train_datasets="synth-nli", trust_remote_code=True)
    cells = plan(cfg, series.name, [(c.revision, c.step) for c in chosen], Path("report.html"))
    evals = {c.name: c.settings for c in cells if c.name.startswith("pretrain-eval")}
    assert list(evals) == [
        "pretrain-eval OLMo-2-1124-7B@step928646",
        "pretrain-eval OLMo-2-1124-7B@stage2-ingredient1-step11931-tokens50B",
        "pretrain-eval OLMo-2-1124-7B@stage2-ingredient2-step11931-tokens50B",
        "pretrain-eval OLMo-2-1124-7B@stage2-ingredient3-step11931-tokens50B",
        "pretrain-eval OLMo-2-1124-7B@main",
    ]
    assert [s.checkpoints for s in evals.values()] == [c.revision for c in chosen]
    tunes = [c.settings for c in cells if c.name.startswith("finetune")]
    assert [s.checkpoint for s in tunes] == [c.revision for c in chosen]
    crossevals = [c.settings for c in cells if c.name.startswith("crosseval")]
    assert len(crossevals) == len(tunes)
    assert all(s.trust_remote_code for s in [*evals.values(), *tunes, *crossevals])


def test_olmo2_1b_stage2_ingredients_and_main_on_its_real_branches(monkeypatch):
    names = [  # allenai/OLMo-2-0425-1B
        "stage1-step140000-tokens294B",
        "stage1-step1907359-tokens4001B",
        "stage2-ingredient3-step23852-tokens51B",
        "stage2-ingredient1-step23852-tokens51B",
        "stage2-ingredient2-step23852-tokens51B",
        "main",
    ]
    _branches(monkeypatch, names)
    series = hub_series("allenai/OLMo-2-0425-1B")
    end = [(c.revision, c.step, c.tokens, c.ingredient) for c in series.checkpoints[2:]]
    assert end == [
        ("stage2-ingredient1-step23852-tokens51B", 1931211, 4_052_000_000_000, 1),
        ("stage2-ingredient2-step23852-tokens51B", 1931211, 4_052_000_000_000, 2),
        ("stage2-ingredient3-step23852-tokens51B", 1931211, 4_052_000_000_000, 3),
        ("main", 1931211, 4_052_000_000_000, None),
    ]
