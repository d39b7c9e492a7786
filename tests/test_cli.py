"""The ftkit command and ft.doctor()."""
import socket
import time

from ftkit.cli import main
from ftkit.core.util import network_available
from ftkit.course.doctor import doctor


def test_doctor_reports_device_versions_and_offline_assets(capsys):
    report = doctor(verbose=True, network=False)
    out = capsys.readouterr().out
    assert report["device"]["name"] in ("cpu", "cuda", "mps")
    assert report["packages"]["torch"] and report["packages"]["transformers"]
    assert "minilm-l6" in report["offline_models"] and "bbc-news" in report["offline_data"]
    assert report["network"] == {"huggingface.co": False, "download.pytorch.org": False}
    assert "device:" in out and "offline models: minilm-l6" in out and "not reachable" in out


def test_network_check_is_fast_and_true_only_when_something_listens():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert network_available("127.0.0.1", port, timeout=1.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # bound but not listening: connections are refused
        start = time.perf_counter()
        assert not network_available("127.0.0.1", closed, timeout=1.0)
    assert time.perf_counter() - start < 2.0


def test_cli_commands(capsys):
    assert main(["doctor", "--offline"]) == 0
    assert "ftkit" in capsys.readouterr().out
    assert main(["models", "--task", "causal-lm"]) == 0
    out = capsys.readouterr().out
    assert "gpt2" in out and "resnet18" not in out
    assert main(["datasets"]) == 0
    assert "bbc-news" in capsys.readouterr().out
    assert main([]) == 0
    assert "doctor" in capsys.readouterr().out
