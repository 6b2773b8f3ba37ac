"""Every analysis on one self-contained HTML page (figures embedded as data URIs)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

import pandas as pd

from analysis import figures
from analysis.beside import beside
from analysis.compare import forgetting, gains, transfer
from analysis.findings import FindingsError, FindingsSettings, measure_findings
from analysis.findings.figures import finding_figures
from analysis.findings.scope import degenerate_cells, flag_degenerate
from analysis.findings.sizes import sizes_figure
from analysis.learned import gains_by_group, learned
from analysis.sensitivity import sensitivity

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } img { max-width: 100%; } .note { color: #666; font-size: 0.9em; }
"""


@dataclass
class Report:
    html: str
    figures: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # file stem -> table


def build_report(
    runs: pd.DataFrame,
    predictions=None,
    *,
    source: str = "",
    published: pd.DataFrame | None = None,
    published_name: str | None = None,
    settings: FindingsSettings = FindingsSettings(),
) -> Report:
    """Compute every analysis of ``runs`` and lay the results out as one HTML page, the four
    findings first; with ``published`` (runs tagged ``amuro.origin=published``), also every
    cell both hold beside the paper's, and the four findings' verdicts on both sides."""
    findings_sections, tables, images = _findings_sections(runs, predictions, settings)
    degenerate = tables.get("findings-degenerate")
    if degenerate is None:
        degenerate = degenerate_cells(runs, predictions)
    gain = gains(runs, predictions)
    forgot = forgetting(runs, predictions)
    learned_table = learned(runs)
    tables.update(
        {
            "learned": learned_table,
            "gains-by-group": gains_by_group(gain.table, learned_table),
            "gains": flag_degenerate(gain.table, degenerate),
            "gains-missing": gain.missing,
            "forgetting": flag_degenerate(forgot.table, degenerate),
            "forgetting-missing": forgot.missing,
            "transfer": transfer(runs),
            "sensitivity": sensitivity(runs),
        }
    )
    images.update(
        {
            "score-by-step.png": figures.score_by_step(runs),
            "gain-by-group.png": figures.gain_by_group(tables["gains-by-group"]),
            "transfer.png": figures.transfer_heatmap(tables["transfer"]),
            "score-by-format.png": figures.score_by_format(runs),
        }
    )
    sections = findings_sections + [
        (
            "Score by pre-training step",
            "score-by-step.png",
            None,
            "Base checkpoints and tuned models, default prompt format; bands are 95% intervals, "
            "error bars the across-seed standard deviation of seed replicates.",
        ),
        (
            "Learned in pre-training or in fine-tuning",
            None,
            "learned",
            "pre-training: the base score's slope against log10(step), over every checkpoint, "
            "has its 95% interval above zero.",
        ),
        (
            "Gain per checkpoint, by group",
            "gain-by-group.png",
            "gains-by-group",
            "Mean in-domain gain of fine-tuning per checkpoint.",
        ),
        (
            "Gains",
            None,
            "gains",
            "gain = tuned − base at the same checkpoint, eval dataset, format, shots and protocol; "
            "ci_method says how the 95% interval was made. Seed replicates form one cell: "
            "n_seeds of them, seed_std the across-seed standard deviation of the tuned score.",
        ),
        (
            "Forgetting",
            None,
            "forgetting",
            "base − tuned on out-of-domain and cross-task evaluations; positive = lost ability.",
        ),
        ("Transfer", "transfer.png", "transfer", "Mean gain by task tuned on x task evaluated."),
        (
            "Prompt sensitivity",
            "score-by-format.png",
            "sensitivity",
            "Across prompt formats: spread = max − min, std = population standard deviation, "
            "default_gap = default − mean of the other formats.",
        ),
        (
            "Missing partners",
            None,
            "gains-missing",
            "Runs that have nothing to be compared with; they are in no table above.",
        ),
    ]

    if published is not None:
        sections += _beside_sections(runs, published, published_name or "published", tables, images)
    body = [
        f"<h1>amuro analysis: {html.escape(', '.join(sorted(runs['experiment'].unique())))}</h1>",
        f"<p class='note'>{len(runs)} finished eval runs{' from ' + html.escape(source) if source else ''}.</p>",
    ]
    for title, image, table, note in sections:
        body.append(f"<h2>{html.escape(title)}</h2><p class='note'>{html.escape(note)}</p>")
        if image:
            encoded = base64.b64encode(images[image]).decode("ascii")
            body.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>")
        if table:
            body.append(_html_table(tables[table]))
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>amuro analysis</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
    return Report(page, images, tables)


def _findings_sections(runs, predictions, settings) -> tuple[list[tuple], dict, dict]:
    """The four findings' verdicts and figures, first on the page."""
    try:
        measured = measure_findings(runs, settings, predictions)
    except FindingsError as error:
        return [("The study's four findings", None, None, str(error))], {}, {}
    tables = {
        "findings": measured.summary,
        "findings-degenerate": measured.degenerate,
        **{f"findings-{name}": table for name, table in measured.details.items()},
    }
    images = finding_figures(measured.details)
    notes = " ".join(measured.notes)
    size_sections = []
    if not measured.sizes.empty:
        tables["findings-sizes"] = measured.sizes
        images["finding-sizes.png"] = sizes_figure(measured.sizes)
        size_sections.append(
            (
                "The findings across model sizes",
                "finding-sizes.png",
                "findings-sizes",
                "Each finding's measure per series against its parameter count (amuro.model_params), "
                "with its 95% interval, under each definitions.",
            )
        )
    sections = [
        (
            "The study's four findings",
            None,
            "findings",
            "Each finding measured under the paper's own definitions (its notebook: hand-picked "
            "dataset pairs, default format, 4 shots, raw change; a part holds when its point "
            "estimate points the claimed way) and amuro's (trend-tested groups, every "
            "checkpoint, a part holds when its 95% interval excludes zero). " + notes,
        ),
        *size_sections,
        (
            "(i) Latent gains",
            "finding-latent.png",
            "findings-latent",
            "gain(checkpoint) − gain(first checkpoint), mean over the datasets learned in "
            "fine-tuning; 95% bootstrap interval over dataset pairs (amuro: and items).",
        ),
        (
            "(ii) Gain by group per checkpoint",
            "finding-groups.png",
            "findings-groups",
            "Mean in-domain gain of the datasets learned in fine-tuning and in pre-training; "
            "gap = the first − the second, with its interval.",
        ),
        (
            "(iii) Forgetting per training set, by relation",
            "finding-forgetting.png",
            "findings-forgetting",
            "base − tuned, mean over checkpoints and pairs; n_forgot: cells whose own interval lies above zero.",
        ),
        (
            "(iv) Prompt sensitivity by checkpoint",
            "finding-sensitivity.png",
            "findings-sensitivity",
            "Mean population std of the score across prompt formats, tuned (with interval) and base.",
        ),
        (
            "Degenerate cells",
            None,
            "findings-degenerate",
            "References of a single class: left out of the findings"
            + (" (kept, as asked)." if settings.keep_degenerate else "."),
        ),
    ]
    return sections, tables, images


def _beside_sections(runs, published, name, tables, images) -> list[tuple]:
    """Sections comparing ``runs`` with the published runs; fills ``tables`` and ``images``."""
    compared = beside(runs, published)
    reference = ", ".join(sorted(set(published["reference"]) - {""}))
    tables["published-findings"] = compared.summary
    tables["published-shared"] = compared.shared
    for finding, table in compared.details.items():
        tables[f"published-{finding}"] = table
    images["yours-vs-paper.png"] = figures.yours_vs_paper(compared.shared)
    scope = (
        f"{len(compared.shared)} cell(s) you share with {name}"
        + (f" ({reference})" if reference else "")
        + "; the findings are measured on each side over these cells only."
    )
    return [
        (
            "Beside the published results: the four findings",
            None,
            "published-findings",
            scope + " Each finding's verdict, where it holds and its value, yours beside the "
            "paper's, under both definitions.",
        ),
        (
            "Shared cells, yours beside the paper's",
            "yours-vs-paper.png",
            "published-shared",
            "difference = yours − paper; its 95% interval from both standard errors (normal). "
            "Your scores average seed replicates and use the bootstrap interval's midpoint "
            "where a run logged it (score_ci_mid), as the study reports.",
        ),
        (
            "(i) Latent gains, both sides",
            None,
            "published-latent",
            "Per checkpoint: gain − gain at the first checkpoint, datasets learned in fine-tuning.",
        ),
        (
            "(ii) Learned in fine-tuning against learned in pre-training, both sides",
            None,
            "published-groups",
            "Mean in-domain gain per checkpoint of each group and the gap.",
        ),
        (
            "(iii) Forgetting, both sides",
            None,
            "published-forgetting",
            "base − tuned per relation (and training set), mean over checkpoints and pairs.",
        ),
        (
            "(iv) Prompt sensitivity by checkpoint, both sides",
            None,
            "published-sensitivity",
            "Mean std of the score across prompt formats, tuned and base cells.",
        ),
    ]


def _html_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p class='note'>(none)</p>"
    return table.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4f}", border=0)
