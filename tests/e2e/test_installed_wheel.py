"""The package as a new user gets it (issue 18 point 1): the wheel built from this
tree, installed into a fresh virtualenv, run from a directory that is no checkout.

The wheel is built as a user's pip builds it (`pip wheel`, the build backend from
PyPI) from a copy of the sources, so nothing a checkout has beside the package
(a stale `build/`, the editable install) can make it pass. The new virtualenv
gets the wheel alone (`--no-deps`) and borrows the third-party packages of the
test's own virtualenv through a path file, so the test downloads no chdb; that
path file adds the directory only, it runs none of the `.pth` files there (the
editable install's finder among them), and the test proves that `pipeline` is
imported from the new virtualenv. Each command starts in a new empty directory
with no `LEADFLOW_*` variable but the tenant's broker, names and port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import venv
from importlib.metadata import version
from pathlib import Path

import pytest

from pipeline.adapters.worker_api import get_json, worker_answers
from pipeline.config.settings import PROJECT_ROOT, Settings
from tests.support.settings import isolated_settings

SOURCES = ("pyproject.toml", "README.md", "pipeline", "agents", "schemas")
"""What the wheel is built from (pyproject names the packages and their data)."""
START_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin/` of a new virtualenv with the wheel of this tree installed."""
    root = tmp_path_factory.mktemp("wheel")
    (root / "src").mkdir()
    for name in SOURCES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, root / "src" / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, root / "src" / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", root / "dist", root / "src"], check=True)
    (wheel,) = (root / "dist").glob("leadflow-*.whl")
    venv.EnvBuilder(with_pip=False).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    subprocess.run(
        [*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], check=True
    )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root / "venv" / "bin"


def user_env(settings: Settings | None = None) -> dict[str, str]:
    """A user's environment: no checkout on the path, no project settings but the
    tenant's (its state directory left to the default)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_") and k != "PYTHONPATH"
    }
    if settings is not None:
        env |= {
            "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "LEADFLOW_TOPIC_PREFIX": settings.topic_prefix,
            "LEADFLOW_APP_ID": settings.app_id,
            "LEADFLOW_WEB_PORT": str(settings.web_port),
            "LEADFLOW_OPERATOR_KEYS": '{"tests": "test-operator-key"}',
            "LEADFLOW_LOG_FORMAT": "json",
        }
    return env


def run(
    bin_dir: Path, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bin_dir / args[0], *args[1:]],
        cwd=cwd,
        env=env or user_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def site_packages(bin_dir: Path) -> Path:
    return Path(
        run(
            bin_dir, bin_dir, "python", "-c", "import pipeline; print(pipeline.__file__)"
        ).stdout.strip()
    ).parent.parent


def test_the_installed_commands_read_the_shipped_files(venv_bin: Path, tmp_path: Path) -> None:
    assert not tmp_path.is_relative_to(PROJECT_ROOT)
    installed = site_packages(venv_bin)
    assert installed.is_relative_to(venv_bin.parent), installed  # not the checkout's package
    shown = run(venv_bin, tmp_path, "leadflow", "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"leadflow {version('leadflow')}"
    listed = run(venv_bin, tmp_path, "leadflow", "topics", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "leads.sales-ready" in listed.stdout and "schemas.lead:LeadAssigned" in listed.stdout
    checked = run(venv_bin, tmp_path, "leadflow", "rules", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shipped = installed / "pipeline" / "defaults" / "rules"
    for name in ("scoring", "enrichment", "nurture", "routing"):
        assert f"ok {shipped / name}.yaml" in checked.stdout
    assert not (tmp_path / ".leadflow").exists()  # reading the registry makes no state


def test_a_users_own_rules_and_topics_are_taken_by_setting(venv_bin: Path, tmp_path: Path) -> None:
    copied = run(venv_bin, tmp_path, "leadflow", "rules", "copy", "mine")
    assert copied.returncode == 0 and (tmp_path / "mine" / "routing.yaml").exists()
    again = run(venv_bin, tmp_path, "leadflow", "rules", "copy", "mine")
    assert again.returncode == 1 and "exists already" in again.stdout
    routing = tmp_path / "mine" / "routing.yaml"
    routing.write_text(routing.read_text().replace("queue: dach", "queue: dahc"))
    mine = {**user_env(), "LEADFLOW_RULES_DIR": "mine"}  # relative: to the working directory
    checked = run(venv_bin, tmp_path, "leadflow", "rules", "check", env=mine)
    assert checked.returncode == 1
    assert str(routing) in checked.stdout and "unknown queue(s) dahc" in checked.stdout
    assert "Traceback" not in checked.stdout + checked.stderr

    shipped = site_packages(venv_bin) / "pipeline" / "defaults" / "topics.yaml"
    own = tmp_path / "topics.yaml"
    own.write_text(shipped.read_text().replace("name: leads.sales-ready", "name: crm.ready"))
    listed = run(
        venv_bin,
        tmp_path,
        "leadflow",
        "topics",
        "list",
        env={**mine, "LEADFLOW_TOPICS_FILE": str(own)},
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "crm.ready" in listed.stdout and "leads.sales-ready" not in listed.stdout


def test_the_installed_worker_serves_with_state_in_the_working_directory(
    kafka: str, venv_bin: Path, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path / "not-used")
    workdir = tmp_path / "run"
    workdir.mkdir()
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [venv_bin / "leadflow", "worker"],
            cwd=workdir,
            env=user_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not worker_answers(settings):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the installed worker did not answer"
            time.sleep(0.5)
        # the shipped migrations made the events table: a new tenant has none yet
        assert get_json(settings, "/v1/warehouse/events") == {}
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert (workdir / ".leadflow" / "warehouse").is_dir()
    assert not (tmp_path / "not-used").exists()
    assert not (venv_bin.parent / ".leadflow").exists()
