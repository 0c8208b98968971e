"""PyTorch interop: ticket.from_torch on an nn.Module in memory, and a state dict written by
safetensors.torch. Skipped (and said so by pytest -rs) when torch is not installed."""

import numpy as np
import pytest

import ticket

torch = pytest.importorskip("torch", reason="PyTorch is not installed: interop tests skipped")
nn = torch.nn


def pruned_mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            w = layer.weight
            w[w.abs() < w.abs().median()] = 0.0  # half the weights pruned
    return net.eval()


def test_from_torch_matches_the_module(tmp_path):
    net = pruned_mlp()
    x = torch.rand(8, 64)
    report = ticket.from_torch(net, x, tmp_path / "m.safetensors")
    kept = sum(int((l.weight != 0).sum()) for l in (net[0], net[2]))
    assert sum(layer["kept_weights"] for layer in report["layers"]) == kept
    got = ticket.load(tmp_path / "m.safetensors").predict(x.numpy())
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert net.training is False


def test_conv_module(tmp_path):
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10)
    ).eval()
    x = torch.rand(3, 1, 8, 8)
    ticket.from_torch(net, x, tmp_path / "c.safetensors")
    got = ticket.load(tmp_path / "c.safetensors").predict(x.numpy())
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_state_dict_from_safetensors_torch(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    net = pruned_mlp()
    path = tmp_path / "state.safetensors"
    safetensors_torch.save_file(net.state_dict(), str(path))
    ticket.export(path, tmp_path / "m.safetensors")
    x = torch.rand(5, 64)
    got = ticket.load(tmp_path / "m.safetensors").predict(x.numpy())
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
