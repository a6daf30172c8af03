"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """The test networks are tiny: one intra-op thread avoids the thread hand-offs that dominate their steps
    (and that blow up when the 2 CI cores are shared with DataLoader workers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def detector() -> str:
    """The detector's Python (structpose.detect); skips without one, fails when STRUCTPOSE_REQUIRE_DETECTOR=1."""
    import os

    from structpose.detect.interpreter import find_detector_python
    from structpose.errors import InputError

    try:
        return find_detector_python()
    except InputError as err:
        if os.environ.get("STRUCTPOSE_REQUIRE_DETECTOR") == "1":
            pytest.fail(f"STRUCTPOSE_REQUIRE_DETECTOR=1 but no detector: {err}")
        pytest.skip(f"no detector Python ({err}); `make detector` makes one")


@pytest.fixture(scope="session")
def astronaut(detector: str, tmp_path_factory: pytest.TempPathFactory):
    """scikit-image's astronaut (Eileen Collins, NASA; public domain; 512 x 512, a frontal waist-up portrait)
    as a PNG, made by the detector's Python (scikit-image is in its venv)."""
    import subprocess

    path = tmp_path_factory.mktemp("images") / "astronaut.png"
    code = "import sys; from skimage import data, io; io.imsave(sys.argv[1], data.astronaut())"
    subprocess.run([detector, "-c", code, str(path)], check=True, capture_output=True, timeout=120)
    return path
