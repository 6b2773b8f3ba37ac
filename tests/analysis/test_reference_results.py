"""The analyses on the study's released OLMo-1B results (real numbers nobody here produced),
cross-checked against the raw table."""

import base64
import re

import pandas as pd
import pytest
from reference_runs import RESULTS, reference_runs

from analysis import gains, gains_by_group, learned, transfer
from analysis.report import build_report

pytestmark = pytest.mark.skipif(not RESULTS.exists(), reason="reference results not present")


def raw(model_id, dataset):
    table = pd.read_csv(RESULTS, index_col=0)
    row = table[(table["model_id"] == model_id) & (table["eval dataset"] == dataset)]
    return float(row["Performance"].iloc[0]), float(row["std"].iloc[0])


def test_gain_matches_the_raw_table():
    base, base_se = raw("olmo1b_checkpoint-342000_original_hf_4shots", "paws")
    tuned, tuned_se = raw("olmo1b_hf_ckpt342000_paws_3epoch_2e-6_4shots", "paws")
    table = gains(reference_runs()).table
    row = table[(table["step"] == 342000) & (table["train_dataset"] == "paws")
                & (table["eval_dataset"] == "paws") & (table["format"] == "default")].iloc[0]
    assert row["gain"] == pytest.approx(tuned - base)
    assert row["rel_gain"] == pytest.approx((tuned - base) / base)
    assert row["ci_high"] - row["gain"] == pytest.approx(1.96 * (base_se**2 + tuned_se**2) ** 0.5)
    assert row["relation"] == "in-domain" and row["ci_method"] == "normal-se"


def test_learned_split_matches_the_raw_table():
    table = learned(reference_runs()).set_index("eval_dataset")
    for dataset in table.index:
        first, first_se = raw("olmo1b_checkpoint-1000_original_hf_4shots", dataset)
        last, last_se = raw("olmo1b_checkpoint-738000_original_hf_4shots", dataset)
        above = last - 1.96 * last_se > first + 1.96 * first_se
        assert table.loc[dataset, "learned_in"] == ("pre-training" if above else "fine-tuning")
    assert table.loc["socialiqa", "learned_in"] == "pre-training"
    assert table.loc["mnli_matched", "learned_in"] == "fine-tuning"


def test_report_on_real_results():
    runs = reference_runs()
    split = learned(runs)
    groups = gains_by_group(gains(runs).table, split)
    assert set(groups["group"]) == {"pre-training", "fine-tuning"}
    assert ("nli", "nli") in set(zip(transfer(runs)["train_task"], transfer(runs)["eval_task"]))
    page = build_report(runs, source="reference").html
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 4 and all(len(base64.b64decode(i)) > 10_000 for i in images)
