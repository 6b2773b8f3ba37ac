"""Stored predictions and scores of fixed cells: a change of results without a result version bump fails."""

import copy
import json

from golden import GOLDEN, differences, score_golden_cells


def test_golden_cells_score_as_stored_unless_a_version_was_bumped():
    fresh = score_golden_cells()
    stored = json.loads(GOLDEN.read_text())
    assert set(stored) == set(fresh)
    problems = differences(stored, fresh)
    assert not problems, "\n".join(problems)

    # A changed prediction, prompt or item score is blamed on the component that makes it, by name.
    nli = "synth-nli [default] next-token"
    changed = copy.deepcopy(fresh)
    changed[nli]["items"][0]["prediction"] += "x"
    assert differences(stored, changed) == [
        f"{nli}: its scoring changed results without a version bump: bump "
        "amuro.scoring.cell_scoring.SCORING_VERSIONS['next-token'], then regenerate the golden file: "
        "python tests/golden.py"
    ]
    summary = "synth-summary [default] generate"
    changed = copy.deepcopy(fresh)
    changed[summary]["items"][1]["prompt_hash"] = "0" * 16
    [problem] = differences(stored, changed)
    assert "its rendering changed" in problem and "TEMPLATE_VERSIONS['summary']" in problem
    changed = copy.deepcopy(fresh)
    changed["golden-mc [default] loglik"]["metrics"]["score"] += 0.1
    [problem] = differences(stored, changed)
    assert "its metric changed" in problem and "METRIC_VERSIONS['accuracy']" in problem

    changed = copy.deepcopy(fresh)
    changed[nli]["items"].pop()
    [problem] = differences(stored, changed)
    assert "other items are scored" in problem

    # After a bump the stored file is stale until regenerated, even where the results stayed the same.
    bumped = copy.deepcopy(fresh)
    bumped[nli]["versions"]["scoring"] = "next-token-2"
    [problem] = differences(stored, bumped)
    assert "result versions changed; regenerate the golden file: python tests/golden.py" in problem
