"""A tracking server for several machines, started as docs/clusters.md writes it: clients reach it by a host
name, a name it does not allow fails in one line, and a model-sized artifact uploads through its proxy."""

import hashlib
import os
import re
import shlex
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.core.local_server import LocalServer
from amuro.core.server_health import ServerRefused, check_server
from amuro.core.uploads import SHORT_TIMEOUT_S, largest_file, sized_timeout, timeout_for
from amuro.training.checkpoint_artifacts import UploadCheckpoints

ROOT = Path(__file__).resolve().parents[1]
UPLOAD_VARIABLES = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD",
    "MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE",
)


def _docs_server_command() -> list[str]:
    text = (ROOT / "docs" / "clusters.md").read_text()
    command = re.search(r"^mlflow server .*?(?<!\\)$", text, re.M | re.S).group(0)
    return shlex.split(command.replace("\\\n", " "))


def _options(words: list[str]) -> dict[str, str]:
    return {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--")}


def test_the_docs_server_command_allows_the_host_names_its_clients_use():
    docs = _options(_docs_server_command())
    local = _options(LocalServer("db", "artifacts", allowed_hosts=["localhost"]).command())
    assert set(docs) == set(local), "the tests start the server as the docs do"
    allowed = docs["--allowed-hosts"].split(",")
    clients = set(re.findall(r"https?://([\w.-]+:\d+)", (ROOT / "docs" / "clusters.md").read_text()))
    rayjob = yaml.safe_load((ROOT / "scripts" / "kuberay_rayjob.yaml").read_text())["spec"]["entrypoint"]
    clients.add(urlsplit(re.search(r"--tracking-uri (\S+)", rayjob).group(1)).netloc)
    assert clients and clients <= set(allowed), f"{clients - set(allowed)} missing from --allowed-hosts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    where = tmp_path_factory.mktemp("allowed-hosts")
    with LocalServer(
        where / "store.db", where / "artifacts", log=where / "server.log", allowed_hosts=["localhost"]
    ) as server:
        yield server


@pytest.fixture
def connected(server, monkeypatch):
    for name in UPLOAD_VARIABLES:  # connect sets them: put them back afterwards
        monkeypatch.delenv(name, raising=False)
    mlflow.set_tracking_uri(server.uri)
    try:
        yield tracking.connect("allowed-hosts")
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


def test_clients_reach_the_server_by_an_allowed_name_and_a_refused_name_fails_in_one_line(server, connected):
    assert server.uri.startswith("http://localhost:")
    assert MlflowClient().get_experiment(connected).name == "allowed-hosts"

    by_address = server.uri.replace("localhost", "127.0.0.1")
    mlflow.set_tracking_uri(by_address)
    start = time.time()
    with pytest.raises(ServerRefused) as refused:
        tracking.connect("allowed-hosts")
    message = refused.value.format_message()
    assert "\n" not in message and time.time() - start < 10
    assert message.startswith(f"tracking server {by_address} refuses the host name 127.0.0.1:{server.port}")
    assert f"--allowed-hosts 127.0.0.1:{server.port}" in message
    assert isinstance(refused.value, UserError)  # the CLI prints it as one line and exits with 2


def _write_incompressible(path: Path, megabytes: int) -> str:
    """``megabytes`` MiB written fast: one random 4 MiB block, each copy stamped with its index."""
    block = bytearray(np.random.default_rng(0).bytes(4 * 1024**2))
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for index in range(megabytes // 4):
            block[:8] = index.to_bytes(8, "little")
            out.write(block)
            digest.update(block)
    return digest.hexdigest()


def test_a_300_mb_checkpoint_uploads_through_the_proxy_within_its_timeout(server, connected, tmp_path, monkeypatch):
    assert os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "true"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == str(SHORT_TIMEOUT_S)
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(100 * 1024**2))  # 500 MB by default

    checkpoint = tmp_path / "checkpoint-7"
    checkpoint.mkdir()
    digest = _write_incompressible(checkpoint / "model.safetensors", 300)
    (checkpoint / "trainer_state.json").write_text('{"global_step": 7}')
    seconds = timeout_for(largest_file(checkpoint))
    assert seconds == SHORT_TIMEOUT_S + 30

    run = MlflowClient().create_run(connected)
    start = time.time()
    args, state = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=7)
    uploads = UploadCheckpoints(run.info.run_id)
    uploads.on_save(args, state, None)
    uploads.flush()  # checkpoints upload in the background
    assert time.time() - start < seconds
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == str(SHORT_TIMEOUT_S)

    stored = next(server.artifacts.rglob("checkpoints/*/model.safetensors"))
    assert stored.stat().st_size == 300 * 1024**2
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
    log = Path(server.log).read_text()
    assert "/mlflow-artifacts/mpu/create/" in log, "the multipart upload was asked of the proxy first"
    assert MlflowClient().get_run(run.info.run_id).data.tags["amuro.checkpoint_step"] == "7"


def test_sized_timeouts_overlap_and_the_short_one_comes_back(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    seen = []
    with sized_timeout(5 * 1024**3) as long:
        assert long == 20 + 512 and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "532"

        def small_upload():
            with sized_timeout(1024):
                seen.append(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"])

        thread = threading.Thread(target=small_upload)
        thread.start()
        thread.join()
        assert seen == ["532"] and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "532"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "20"
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT")
    with sized_timeout(0):
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "20"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_a_server_that_is_not_mlflow_fails_the_check_in_one_line(tmp_path):
    """A web server that answers /health but has no tracking API (a wrong port, a proxy's own page)."""
    import http.server

    class OnlyHealth(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 403)
            self.end_headers()
            self.wfile.write(b"OK" if self.path == "/health" else b"Forbidden")

        do_POST = do_GET

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), OnlyHealth)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(ServerRefused, match=r"answers /health but refused an API call \(.*403") as refused:
            check_server(uri)
        assert "\n" not in refused.value.format_message()
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    "variable, value, kind",
    [
        ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.5", "whole number"),
        ("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "some", "number"),
    ],
)
def test_an_mlflow_request_setting_it_cannot_read_is_one_line_before_any_request(monkeypatch, variable, value, kind):
    from click.testing import CliRunner

    from amuro.cli import main

    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(main, ["--tracking-uri", "http://127.0.0.1:9", "pretrain-eval", "--model", "x"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip() == f"Error: {variable}={value!r} is not a {kind}: set it to one, or unset it"
