"""W&B configured on a machine without network (a cluster compute node) falls back to offline with one warning
line instead of hanging in wandb.init."""

import logging
import socket

import pytest
import wandb

from arnn.runs.wandb_mode import FallbackWandbLogger, unreachable
from tests.helpers.runs import run_cli

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def silent_server():
    """A server that accepts connections and never answers, as a firewalled proxy does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("server", "reason"), [("closed_port", "cannot connect to"), ("silent_server", "deadline exceeded")]
)
def test_wandb_with_a_key_and_no_network_trains_offline_after_one_warning(tmp_path, request, server, reason):
    home = tmp_path / "home"
    home.mkdir()
    url = request.getfixturevalue(server)
    result = run_cli(
        "trainer=debug",
        "logger=wandb",
        "logger.wandb.init_timeout=3",
        "callbacks.rich_progress_bar=null",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"HOME": str(home), "WANDB_MODE": "online", "WANDB_API_KEY": FAKE_KEY, "WANDB_BASE_URL": url},
    )

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "W&B is configured but" in line]
    assert len(warnings) == 1 and reason in warnings[0] and "make sync" in warnings[0], output
    assert "Traceback" not in output
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


@pytest.fixture
def fresh_wandb():
    """W&B reads its environment once per process, at its first init: start from no earlier test's settings."""
    wandb.teardown()
    yield
    wandb.teardown()


def test_wandb_init_that_times_out_falls_back_to_offline(tmp_path, monkeypatch, caplog, silent_server, fresh_wandb):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", silent_server)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert unreachable(silent_server, timeout=2) is None  # it accepts the connection: only wandb.init can tell

    logger = FallbackWandbLogger(project="arnn", save_dir=str(tmp_path), init_timeout=2)
    with caplog.at_level(logging.WARNING):
        run = logger.experiment
    try:
        assert run.settings.mode in ("offline", "dryrun")
        run.log({"x": 1.0})
    finally:
        wandb.finish()
    (warning,) = [record.getMessage() for record in caplog.records if "W&B is configured but" in record.getMessage()]
    assert "deadline exceeded" in warning or "Timed out" in warning
    assert not [record for record in caplog.records if record.exc_info]


def test_unreachable_names_the_reason(closed_port):
    assert unreachable(closed_port, timeout=2) == "Connection refused"
