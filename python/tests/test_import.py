"""ticket.export on files PyTorch wrote (state dicts, both ONNX exporters), then predict:
the logits PyTorch / ONNX Runtime computed for the same inputs, stored beside the files by
tests/fixtures/import/make_fixtures.py."""

import numpy as np
import pytest

import ticket
from conftest import REPO, read_safetensors

FIXTURES = REPO / "tests/fixtures/import"


@pytest.fixture(scope="module")
def expected():
    return read_safetensors(FIXTURES / "expected.safetensors")[0]


@pytest.mark.parametrize(
    "name, inputs",
    [
        ("mlp-dense.safetensors", "digits_input"),
        ("mlp-pruned.safetensors", "digits_input"),
        ("mlp-permanent.safetensors", "digits_input"),
        ("mlp-dynamo-false.onnx", "digits_input"),
        ("mlp-dynamo.onnx", "digits_input"),
        ("conv-dynamo-false.onnx", "image_input"),
        ("conv-dynamo.onnx", "image_input"),
    ],
)
def test_pytorch_files_give_pytorch_logits(tmp_path, expected, name, inputs):
    out = tmp_path / "model.csr.safetensors"
    report = ticket.export(FIXTURES / name, out)
    assert report["import"]["kind"] in ("onnx", "pytorch-state-dict", "pytorch-pruned-state-dict")
    got = ticket.load(out).predict(expected[inputs])
    want = expected[name.rsplit(".", 1)[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_keep_prunes_each_layer_to_the_fraction(tmp_path):
    report = ticket.export(FIXTURES / "mlp-dense.safetensors", tmp_path / "m.safetensors", keep=0.25)
    assert report["pruned_on_export"]["keep"] == 0.25
    for layer in report["layers"]:
        weights = layer["rows"] * layer["cols"]
        assert layer["kept_weights"] == round(0.25 * weights)


def test_global_pruning_keeps_the_fraction_overall(tmp_path):
    report = ticket.export(
        FIXTURES / "mlp-dense.safetensors", tmp_path / "m.safetensors", keep=0.1, pruning="global"
    )
    kept = sum(layer["kept_weights"] for layer in report["layers"])
    weights = sum(layer["rows"] * layer["cols"] for layer in report["layers"])
    assert kept == round(0.1 * weights)
    assert report["pruned_on_export"]["pruning"] == "global"


def test_codebook_and_gap_codecs(tmp_path, expected):
    out = tmp_path / "k6.safetensors"
    report = ticket.export(FIXTURES / "mlp-pruned.safetensors", out, dtype="k6", index_bits=5)
    model = ticket.load(out)
    assert model.info["value_codec"] == "k6" and model.info["index_codec"] == "gap5"
    f32 = tmp_path / "f32.safetensors"
    ticket.export(FIXTURES / "mlp-pruned.safetensors", f32)
    total = report["total"]
    assert total["csr_file_bytes"] == out.stat().st_size
    assert total["csr_f32_file_bytes"] == f32.stat().st_size
    # Six bits per value; five per gap, plus any filler entries.
    assert total["bits"]["values"] == 6.0 and total["bits"]["indices"] >= 5.0
    assert out.stat().st_size < f32.stat().st_size
    x = expected["digits_input"]
    # Six-bit shared weights: close to, not equal to, the f32 logits.
    np.testing.assert_allclose(model.predict(x), ticket.load(f32).predict(x), atol=0.25)


def test_index_bits_per_layer_kind_and_auto(tmp_path, expected):
    source = FIXTURES / "mlp-pruned.safetensors"
    f32 = ticket.load(ticket.export(source, tmp_path / "f32.safetensors")["output"])
    x = expected["digits_input"]
    widths = {}
    for bits in range(3, 9):
        report = ticket.export(source, tmp_path / f"{bits}.safetensors", index_bits=bits)
        widths[bits] = sum(layer["csr_bytes"]["indices"] for layer in report["layers"])
    out = tmp_path / "auto.safetensors"
    report = ticket.export(source, out, index_bits="auto")
    auto = ticket.load(out)
    # An MLP has only linear layers: auto picks their narrowest cheapest width.
    best = min(widths, key=lambda b: (widths[b], b))
    assert auto.info["index_codec"] == f"gap{best}"
    layers = len(auto.info["layers"])
    assert [layer["index_codec"] for layer in auto.info["layers"]] == [f"gap{best}"] * layers
    np.testing.assert_array_equal(auto.predict(x), f32.predict(x))
    per_kind = ticket.export(source, tmp_path / "k.safetensors", index_bits="linear=6")
    per_kind = ticket.load(per_kind["output"])
    assert [layer["index_codec"] for layer in per_kind.info["layers"]] == ["gap6"] * layers
    np.testing.assert_array_equal(per_kind.predict(x), f32.predict(x))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"keep": 1.5}, "--keep 1.5"),
        ({"keep": 0.5, "pruning": "random"}, "`random` is not"),
        ({"index_bits": 9}, "not 3..8"),
        ({"index_bits": "pool=4"}, "unknown layer kind `pool`"),
        ({"index_bits": "conv=3,conv=4"}, "twice"),
        ({"dtype": "k9"}, "dtype"),
    ],
)
def test_bad_import_options(tmp_path, options, message):
    with pytest.raises(ticket.TicketError, match=message):
        ticket.export(FIXTURES / "mlp-dense.safetensors", tmp_path / "m.safetensors", **options)


def test_unsupported_onnx_names_the_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes((FIXTURES / "mlp-dynamo-false.onnx").read_bytes()[:100])
    with pytest.raises(ticket.TicketError, match="broken.onnx"):
        ticket.export(bad, tmp_path / "m.safetensors")
