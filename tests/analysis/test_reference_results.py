"""The analyses on the study's released OLMo-1B results (real numbers nobody here produced),
imported as runs and cross-checked against the raw tables."""

import base64
import re

import pandas as pd
import pytest

from analysis import gains, gains_by_group, learned, transfer
from analysis.published.tables import DATA
from analysis.report import build_report

PER_FORMAT = DATA / "all_perf_table.csv"
# Catalogue names of the datasets the released table names otherwise.
RELEASED_NAMES = {
    "cnn_dailymail": "cnn", "llmbar_natural": "llmbar_Natural",
    "llmbar_adversarial_manual": "llmbar_Adversarial_Manual",
    "llmbar_adversarial_neighbor": "llmbar_Adversarial_Neighbor",
}


def raw(model_id, dataset):
    table = pd.read_csv(PER_FORMAT, index_col=0)
    row = table[(table["model_id"] == model_id) & (table["eval dataset"] == dataset)]
    return float(row["Performance"].iloc[0]), float(row["std"].iloc[0])


def test_gain_matches_the_raw_table(published_runs):
    base, base_se = raw("olmo1b_checkpoint-342000_original_hf_4shots", "paws")
    tuned, tuned_se = raw("olmo1b_hf_ckpt342000_paws_3epoch_2e-6_4shots", "paws")
    table = gains(published_runs).table
    row = table[(table["step"] == 342000) & (table["train_dataset"] == "paws")
                & (table["eval_dataset"] == "paws") & (table["format"] == "default")
                & (table["shots"] == 4)].iloc[0]
    assert row["gain"] == pytest.approx(tuned - base)
    assert row["rel_gain"] == pytest.approx((tuned - base) / base)
    assert row["ci_high"] - row["gain"] == pytest.approx(1.96 * (base_se**2 + tuned_se**2) ** 0.5)
    assert row["relation"] == "in-domain" and row["ci_method"] == "normal-se"
    assert (row["protocol"], row["n_seeds"]) == ("study", 1)


def test_learned_split_matches_the_raw_table(published_runs):
    table = learned(published_runs).set_index("eval_dataset")
    per_format = table[table["task"] != "mc"]
    for dataset in per_format.index:
        released = RELEASED_NAMES.get(dataset, dataset)
        first, first_se = raw("olmo1b_checkpoint-1000_original_hf_4shots", released)
        last, last_se = raw("olmo1b_original_hf_4shots", released)  # main, step 738020
        above = last - 1.96 * last_se > first + 1.96 * first_se
        assert table.loc[dataset, "learned_in"] == ("pre-training" if above else "fine-tuning")
        assert table.loc[dataset, ["first_step", "last_step"]].tolist() == [1000, 738020]
    assert table.loc["socialiqa", "learned_in"] == "pre-training"
    assert table.loc["mnli_matched", "learned_in"] == "fine-tuning"
    # The study's learned-in-pre-training group: the multiple-choice suites.
    for dataset in ["arc_easy", "arc_challenge", "hellaswag", "openbookqa", "sciq_mc", "boolq"]:
        assert table.loc[dataset, "learned_in"] == "pre-training"


def test_report_on_real_results(published_runs):
    split = learned(published_runs)
    groups = gains_by_group(gains(published_runs).table, split)
    assert set(groups["group"]) == {"pre-training", "fine-tuning"}
    pairs = set(zip(transfer(published_runs)["train_task"], transfer(published_runs)["eval_task"]))
    # The instruction-tuning mixture is named after itself: no eval run tags its task.
    assert {("nli", "nli"), ("tulu_v2", "mc"), ("tulu_v2", "instruction-following")} <= pairs
    page = build_report(published_runs, source="reference").html
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 4 and all(len(base64.b64decode(i)) > 10_000 for i in images)
