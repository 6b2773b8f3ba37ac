"""The analyses on the study's released OLMo-1B results (real numbers nobody here produced),
imported as runs and cross-checked against the raw tables."""

import base64
import re

import numpy as np
import pandas as pd
import pytest

from analysis import gains, gains_by_group, learned, transfer
from analysis.published.tables import DATA
from analysis.report import build_report

PER_FORMAT = DATA / "all_perf_table.csv"
# Catalogue names of the datasets the released table names otherwise.
RELEASED_NAMES = {
    "cnn_dailymail": "cnn",
    "llmbar_natural": "llmbar_Natural",
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
    row = table[
        (table["step"] == 342000)
        & (table["train_dataset"] == "paws")
        & (table["eval_dataset"] == "paws")
        & (table["format"] == "default")
        & (table["shots"] == 4)
    ].iloc[0]
    assert row["gain"] == pytest.approx(tuned - base)
    assert row["rel_gain"] == pytest.approx((tuned - base) / base)
    assert row["ci_high"] - row["gain"] == pytest.approx(1.96 * (base_se**2 + tuned_se**2) ** 0.5)
    assert row["relation"] == "in-domain" and row["ci_method"] == "normal-se"
    assert (row["protocol"], row["n_seeds"]) == ("study", 1)


def test_learned_split_is_a_trend_over_the_whole_series(published_runs):
    table = learned(published_runs).set_index("eval_dataset")
    per_format = pd.read_csv(PER_FORMAT, index_col=0)
    steps = [1000, 18000, 342000, 424000, 505000, 592000, 738000, 738020]
    for dataset in table[table["task"] != "mc"].index:
        released = RELEASED_NAMES.get(dataset, dataset)
        ids = [f"olmo1b_checkpoint-{step}_original_hf_4shots" for step in steps[:-1]]
        ids.append("olmo1b_original_hf_4shots")  # main, step 738020
        rows = per_format[per_format["eval dataset"] == released].set_index("model_id")
        scores = rows.loc[ids, "Performance"].to_numpy(float)
        slope = np.polyfit(np.log10(steps), scores, 1)[0]
        assert table.loc[dataset, "slope"] == pytest.approx(slope, abs=1e-12)
        assert table.loc[dataset, ["first_step", "last_step", "n_checkpoints"]].tolist() == [1000, 738020, 8]
    # As the study groups them: socialiqa and boolq do not rise over the series, the
    # knowledge suites do (two endpoints alone put socialiqa and boolq in pre-training).
    for dataset in ["socialiqa", "boolq", "mnli_matched", "mnli_mismatched", "paws", "xsum"]:
        assert table.loc[dataset, "learned_in"] == "fine-tuning"
    for dataset in ["arc_easy", "arc_challenge", "hellaswag", "openbookqa", "sciq_mc"]:
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
    assert len(images) == 8 and all(len(base64.b64decode(i)) > 10_000 for i in images)
