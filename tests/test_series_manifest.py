"""Series manifests (checkpoints across repositories and revisions) and `amuro checkpoints`, which lists a
series before a grid is planned."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hubcache import write_hub_cache
from transformers import AutoModelForCausalLM

from amuro.cli import main
from amuro.core.errors import UserError
from amuro.models import hub_listing
from amuro.models.series import local_series, open_series

# Real branches of LLM360/Amber: ckpt_000 to ckpt_359, the last also main.
AMBER_BRANCHES = ["ckpt_000", "ckpt_100", "ckpt_200", "ckpt_359"]


def _two_repositories(small_series, tmp_path) -> tuple[Path, list]:
    """``org/early``: a folder of branch folders (the first checkpoints); ``org/final``: one saved model."""
    found = local_series(small_series).checkpoints
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "early").symlink_to(small_series, target_is_directory=True)
    (tmp_path / "org" / "final").symlink_to(found[-1].location, target_is_directory=True)
    return tmp_path / "org", found


def test_a_manifest_over_two_local_repositories_is_a_series_and_checkpoints_lists_it(small_series, tmp_path):
    _, found = _two_repositories(small_series, tmp_path)
    path = tmp_path / "family.yaml"
    path.write_text(
        "series: small-family\n"
        "checkpoints:\n"
        f"  - {{repo: ./org/early, revision: {found[0].revision}, step: {found[0].step}, tokens: {found[0].tokens}}}\n"
        f"  - {{repo: ./org/early, revision: {found[1].revision}, step: {found[1].step}, tokens: 10.24K}}\n"
        f"  - {{repo: ./org/final, step: {found[-1].step}, tokens: {found[-1].tokens}, name: last}}\n"
    )
    series = open_series(str(path))
    assert series.name == "small-family"
    assert series.revisions == [f"early-{found[0].revision}", f"early-{found[1].revision}", "last"]
    assert [c.step for c in series.checkpoints] == [found[0].step, found[1].step, found[-1].step]
    assert series.checkpoints[1].tokens == 10_240 and series.select("all") == series.checkpoints
    assert series.get(found[-1].step).label == f"small-family@step{found[-1].step}"
    model, _ = series.get("last").load()
    reference = AutoModelForCausalLM.from_pretrained(found[-1].location)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))

    result = CliRunner().invoke(main, ["checkpoints", "--model", str(path), "--checkpoints", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "series small-family: 3 checkpoints, 2 selected by '2'"
    assert lines[1].split() == ["revision", "step", "tokens", "stage", "location"]
    first_tokens = f"{found[0].tokens / 1000:g}K"
    assert lines[2].split()[:4] == ["*", f"early-{found[0].revision}", str(found[0].step), first_tokens]
    assert lines[3].split()[:3] == [f"early-{found[1].revision}", str(found[1].step), "10.24K"]
    assert lines[4].split()[:3] == ["*", "last", str(found[-1].step)] and lines[4].endswith(found[-1].location)

    listed = CliRunner().invoke(main, ["checkpoints", "--model", small_series, "--checkpoints", "study"])
    assert listed.exit_code == 0, listed.output
    assert "study checkpoint step1000 -> " in listed.output and "4 checkpoints, 1 selected by 'study'" in listed.output


def test_a_manifest_naming_a_missing_revision_or_folder_is_one_line(small_series, tmp_path):
    _two_repositories(small_series, tmp_path)
    missing = tmp_path / "missing.yaml"
    missing.write_text("checkpoints:\n  - {repo: ./org/early, revision: step41-tokens20992, step: 41}\n")
    result = CliRunner().invoke(main, ["checkpoints", "--model", str(missing)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"series manifest {missing}, checkpoint 1: ./org/early has no revision 'step41-tokens20992'" in result.output
    assert "did you mean" in result.output and "step40-tokens20480" in result.output
    for text, says in [
        ("checkpoints:\n  - {repo: ./org/none, step: 1}\n", "folder .* does not exist"),
        ("checkpoints:\n  - {repo: ./org/final}\n", "'step' must be a whole number"),
        ("checkpoints:\n  - {repo: ./org/final, step: 1, tokens: lots}\n", "'tokens' must be a count"),
        ("checkpoints:\n  - {repo: ./org/final, step: 1, revison: main}\n", "unknown field 'revison'"),
        ("checkpoints: []\n", "lists no checkpoints"),
        ("checkpoints:\n  - {repo: ./org/final, step: 1}\n  - {repo: ./org/final, step: 2}\n", "main twice"),
    ]:
        missing.write_text(text)
        with pytest.raises(UserError, match=says):
            open_series(str(missing))
    with pytest.raises(UserError, match="does not exist"):
        open_series(str(tmp_path / "absent.yaml"))


def test_a_manifest_of_hub_revisions_resolves_offline_and_names_a_missing_one(small_series, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    refs = write_hub_cache(small_series, "LLM360/Amber", tmp_path / "hub", AMBER_BRANCHES)
    calls = []

    def list_repo_refs(repo):  # the real signature takes no revision
        calls.append(repo)
        return refs(repo)

    monkeypatch.setattr(hub_listing, "list_repo_refs", list_repo_refs)
    path = tmp_path / "amber.yaml"
    path.write_text(
        "series: LLM360/Amber\n"
        "checkpoints:\n"
        "  - {repo: LLM360/Amber, revision: ckpt_100, step: 100, tokens: 354B}\n"
        "  - {repo: LLM360/Amber, revision: ckpt_359, step: 359, tokens: 1.26T}\n"
    )
    series = open_series(str(path))
    assert calls == ["LLM360/Amber"]  # one listing per repository
    first = series.get("ckpt_100")
    assert (first.step, first.tokens, first.hub_revision) == (100, 354 * 10**9, "ckpt_100")
    assert first.location == "LLM360/Amber"
    assert first.commit == refs("LLM360/Amber").branches[1].target_commit
    model, _ = first.load()
    reference = AutoModelForCausalLM.from_pretrained(local_series(small_series).checkpoints[1].location)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    path.write_text("checkpoints:\n  - {repo: LLM360/Amber, revision: ckpt_360, step: 360}\n")
    with pytest.raises(UserError, match=r"LLM360/Amber has no revision 'ckpt_360': did you mean"):
        open_series(str(path))

    def offline(repo):
        raise OSError("offline mode is enabled")

    monkeypatch.setattr(hub_listing, "list_repo_refs", offline)
    with pytest.raises(UserError, match="cannot list the revisions of hub model LLM360/Amber"):
        open_series(str(path))
