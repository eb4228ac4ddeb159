"""One real local Ray cluster per test session, on loopback, with its own temp dir and auth mode."""

import os

import pytest


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    if ray.is_initialized():  # a docs example may have left one behind
        ray.shutdown()
    ray.init(
        num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")),
        _node_ip_address="127.0.0.1", log_to_driver=False,
    )  # fmt: skip
    yield ray
    ray.shutdown()
