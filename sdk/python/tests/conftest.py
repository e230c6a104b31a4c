import os

import pytest


@pytest.fixture
def fleet():
    """Where the fleet the test runs against is (set by the Rust harness,
    node/tests/it/python_sdk.rs): its servers, an admin token and a worker token."""
    servers = os.environ.get("TASKNODE_SERVERS")
    if not servers:
        pytest.skip("run through `scripts/test` (node/tests/it/python_sdk.rs starts the fleet)")
    return {
        "servers": servers,
        "token": os.environ["TASKNODE_TOKEN"],
        "worker_token": os.environ["TASKNODE_WORKER_TOKEN"],
    }
