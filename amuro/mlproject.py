"""The MLproject file, generated from the settings fields: one entry point per command, every option a parameter."""

from __future__ import annotations

import json

HEADER = """\
# Generated from amuro/core/settings.py by `python -m amuro mlproject`; edit the settings, not this file.
name: amuro

conda_env: conda.yaml

entry_points:
"""
ANALYZE = """\
  analyze:
    parameters:
      experiment: {type: string, default: amuro-char}
      command: {type: string, default: report}
      out: {type: string, default: amuro-report.html}
    command: "python -m analysis {command} --experiment {experiment} --out {out}"
"""


def _quoted(text: str) -> str:
    return json.dumps(text)


def mlproject_text(entry_points, options_of) -> str:
    blocks = []
    for name, cls in entry_points.items():
        options = [option for option in options_of(cls) if not option.meta.secret]
        lines = [f"  {name}:", "    parameters:"]
        for option in options:
            default = option.default_text
            lines.append(f"      {option.name}: {{type: string, default: {_quoted(default)}}}")
        command = " ".join(f"{option.flag} {{{option.name}}}" for option in options)
        lines.append("    command: >-")
        lines.append(f"      python -m amuro {name} {command}")
        blocks.append("\n".join(lines) + "\n")
    return HEADER + "\n".join(blocks) + "\n" + ANALYZE
