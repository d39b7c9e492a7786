"""Test set-up: no network, caches in a temporary folder, seeded, two threads."""
import os
import tempfile

# Set before transformers / huggingface_hub / torch.hub are imported by any test.
_HOME = tempfile.mkdtemp(prefix="ftkit-tests-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_HOME, "hf")
os.environ["TORCH_HOME"] = os.path.join(_HOME, "torch")
os.environ["FTKIT_HOME"] = os.path.join(_HOME, "ftkit")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as ftkit sets it: sleeping, not spinning, threads
os.environ.setdefault("OMP_NUM_THREADS", "2")  # the same thread count for fit and reference loops
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train fastest on one thread, and a busy machine's other processes then slow them least.

    A test module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
