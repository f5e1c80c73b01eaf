"""The demo works only with its own worker (issue 19, point 6): the health answer
names the worker's pid, a port another process holds is refused before anything
starts, and a worker that died while another process answers on its port is
noticed instead of read as healthy. Real worker processes on the real broker."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from pipeline.adapters.worker_api import get_json
from pipeline.dev.harness import WorkerProcess
from pipeline.errors import LeadflowError
from tests.support.processes import leadflow, started_worker
from tests.support.settings import free_port, isolated_settings


class Impostor(BaseHTTPRequestHandler):
    """Another process' server that answers health checks as a worker would."""

    def do_GET(self) -> None:
        body = b'{"status": "ok", "pid": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def impostor_on(port: int) -> Iterator[None]:
    server = HTTPServer(("127.0.0.1", port), Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_the_health_answer_names_the_workers_pid_and_a_dead_worker_is_noticed(
    kafka: str, tmp_path: Path
) -> None:
    with started_worker(kafka, tmp_path) as (settings, _, worker):
        assert worker.process is not None
        assert get_json(settings, "/v1/health")["pid"] == worker.process.pid
        worker.check()  # its own, alive: no error
        second = WorkerProcess(settings, tmp_path / "second.log")
        with pytest.raises(LeadflowError, match="another process already listens"):
            second.start()  # refused before it spawns anything
        assert second.process is None
        worker.kill()
        exited = pytest.raises(LeadflowError, match=r"the worker exited \(code -9\)")
        with impostor_on(settings.web_port), exited:
            worker.check()


def test_a_health_answer_from_another_process_is_not_the_worker(kafka: str, tmp_path: Path) -> None:
    """The worker this started is alive, but another process answers where it is
    looked for (e.g. it took the port between the check and the worker's bind)."""
    with started_worker(kafka, tmp_path) as (settings, _, worker):
        elsewhere = free_port()
        worker.settings = settings.model_copy(update={"web_port": elsewhere})
        with impostor_on(elsewhere), pytest.raises(LeadflowError) as refused:
            worker.check()
        assert worker.process is not None and worker.process.poll() is None  # alive
        assert f"another process (pid 1) answers at http://127.0.0.1:{elsewhere}" in str(
            refused.value
        )
        worker.settings = settings


def test_the_demo_refuses_to_start_when_its_port_is_taken(kafka: str, tmp_path: Path) -> None:
    settings = isolated_settings(kafka, tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", settings.web_port))
        holder.listen()
        done = leadflow(settings, "demo", "--leads", "5", timeout=60)
    assert done.returncode == 1
    assert "another process already listens at 127.0.0.1:" in done.stdout
    assert "LEADFLOW_WEB_PORT" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "logs" / "worker.log").exists()  # no worker was started
