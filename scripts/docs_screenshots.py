"""Take the docs' pictures again: the MLflow UI over a real store, and the report's figures.

    python scripts/docs_screenshots.py ui STORE_FOLDER      # docs/images/ui-*.png from STORE_FOLDER/mlflow.db
    python scripts/docs_screenshots.py report REPORT.html   # docs/images/report-*.png from a report page

The store is the one the README's study makes (``amuro sweep --checkpoints 2 ...`` in an empty folder); the
UI is served with ``mlflow ui`` as the docs say and opened in headless Chromium (``apt-get install -y
chromium``), as ``tests/test_ui_browser.py`` drives it. The figures come from a page ``python -m analysis
report`` wrote (the docs use the study's released results: ``python -m analysis import-published``, then
``python -m analysis report --experiment amuro-char-published``). Every picture is reduced to a small
palette so that it stays well under 200 KB.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from amuro.core.local_server import free_port

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
WIDTH, HEIGHT = 1600, 900
CONTENT_WIDTH = 1190  # the UI's own pages; MLflow's assistant panel to their right is left out
UI_PAGES = {
    "ui-runs-table.png": "#/experiments/{id}/runs",
    "ui-charts.png": "#/experiments/{id}/runs?compareRunsMode=CHART",
}
REPORT_FIGURES = {  # the report's image titles -> docs image names
    "Score by pre-training step": "report-score-by-step.png",
    "Gain per checkpoint, by group": "report-gain-by-group.png",
    "Transfer": "report-transfer.png",
    "Prompt sensitivity": "report-sensitivity.png",
    "(ii) Gain by group per checkpoint": "report-finding-groups.png",
}


def save_small(png: bytes, name: str, max_width: int = 1000, crop_width: int | None = None) -> Path:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if crop_width:
        image = image.crop((0, 0, min(crop_width, image.width), image.height))
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    path = IMAGES / name
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")
    return path


def ui(store: Path, experiment_id: str = "1") -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install -y chromium)")
    port = free_port()
    env = {**os.environ, "MLFLOW_PORT": str(port), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        ["mlflow", "ui", "--backend-store-uri", "sqlite:///mlflow.db"],
        cwd=store,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(base + "health", timeout=5).close()
                break
            except OSError:
                time.sleep(1)
        for name, page in UI_PAGES.items():
            shot = IMAGES / f".{name}"
            subprocess.run(
                [
                    chromium,
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--window-size={WIDTH},{HEIGHT}",
                    "--virtual-time-budget=40000",
                    f"--screenshot={shot}",
                    base + page.format(id=experiment_id),
                ],
                capture_output=True,
                timeout=300,
                check=True,
            )
            save_small(shot.read_bytes(), name, max_width=WIDTH, crop_width=CONTENT_WIDTH)
            shot.unlink()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def report(page: Path) -> None:
    html = page.read_text()
    found = dict(re.findall(r"<img alt='([^']*)' src='data:image/png;base64,([^']+)'>", html))
    for title, name in REPORT_FIGURES.items():
        save_small(base64.b64decode(found[title]), name)


if __name__ == "__main__":
    kind, source = sys.argv[1], Path(sys.argv[2]).resolve()
    IMAGES.mkdir(parents=True, exist_ok=True)
    {"ui": ui, "report": report}[kind](source)
