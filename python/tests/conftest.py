"""Fixtures for the ticket Python tests: model files committed in the repository (written by
ticket's own tests or by PyTorch) and a minimal safetensors reader written from the format's
specification, so the expected values never come from the code under test."""

import json
import pathlib
import struct

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DTYPES = {"F32": "<f4", "F16": "<f2", "U8": "u1", "U16": "<u2", "U32": "<u4", "I64": "<i8"}


def read_safetensors(path):
    """(tensors as numpy arrays, metadata) of a safetensors file."""
    buf = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n :]
    tensors = {}
    for name, t in header.items():
        start, end = t["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], DTYPES[t["dtype"]]).reshape(t["shape"])
    return tensors, meta


@pytest.fixture
def mlp_checkpoint():
    """A masked 64-8-10 MLP checkpoint (ticket-dense, format version 1) trained on digits."""
    return REPO / "crates/export/tests/fixtures/v1/dense.safetensors"


@pytest.fixture
def conv_model():
    """A small CSR conv net (conv, max/avg pooling, strides, padding) and the logits PyTorch
    computed for it: (model path, input [7, 1, 12, 12], logits [7, 10])."""
    fixtures = REPO / "crates/infer/tests/fixtures"
    tensors, _ = read_safetensors(fixtures / "torch-conv-logits.safetensors")
    return fixtures / "torch-conv.safetensors", tensors["input"], tensors["logits"]


def mlp_logits(checkpoint, x):
    """Logits of the masked MLP checkpoint on x [batch, 64], in numpy (ReLU between layers)."""
    t, meta = read_safetensors(checkpoint)
    layers = [f"fc{i}" for i in range(1, len(meta["arch"].split("-")))]
    h = x.astype(np.float64)
    for i, name in enumerate(layers):
        w = t[f"{name}.weight"] * t[f"{name}.weight_mask"]
        h = h @ w.T.astype(np.float64) + t[f"{name}.bias"]
        if i + 1 < len(layers):
            h = np.maximum(h, 0)
    return h
