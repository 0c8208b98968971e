"""ticket.export returns the compression report; its numbers follow from the file."""

import numpy as np

import ticket
from conftest import read_safetensors


def test_report_counts_what_the_checkpoint_keeps(tmp_path, mlp_checkpoint):
    out = tmp_path / "m.csr.safetensors"
    report = ticket.export(mlp_checkpoint, out)
    tensors, _ = read_safetensors(mlp_checkpoint)
    kept = int(tensors["fc1.weight_mask"].sum() + tensors["fc2.weight_mask"].sum())
    assert sum(layer["kept_weights"] for layer in report["layers"]) == kept
    assert [layer["name"] for layer in report["layers"]] == ["fc1", "fc2"]
    assert report["total"]["csr_file_bytes"] == out.stat().st_size
    assert report["total"]["dense_f32_bytes"] == 4 * (8 * 64 + 8 + 10 * 8 + 10)
    assert report["input_has_masks"] is True


def test_f16_export_rounds_values(tmp_path, mlp_checkpoint):
    f32 = ticket.load(_export(tmp_path, mlp_checkpoint, "f32"))
    f16 = ticket.load(_export(tmp_path, mlp_checkpoint, "f16"))
    assert f16.info["value_codec"] == "f16"
    assert f16.info["file_bytes"] < f32.info["file_bytes"]
    x = np.random.default_rng(2).random((8, 64), dtype=np.float32)
    np.testing.assert_allclose(f16.predict(x), f32.predict(x), rtol=1e-2, atol=1e-2)


def test_export_with_data_measures_accuracy(tmp_path, mlp_checkpoint):
    report = ticket.export(mlp_checkpoint, tmp_path / "m.safetensors", dataset="digits")
    accuracy = report["accuracy"]
    # Every kept weight is stored exactly in f32: the exported model classifies the held-out
    # digits exactly as the checkpoint does.
    assert accuracy["dataset"] == "digits" and accuracy["examples"] == 359
    assert 0.0 < accuracy["exported"] <= 1.0
    assert accuracy["exported"] == accuracy["source"]


def test_keep_layers_keeps_each_layers_largest_weights(tmp_path, mlp_checkpoint):
    report = ticket.export(mlp_checkpoint, tmp_path / "m.safetensors", keep_layers={"fc1": 0.125})
    tensors, _ = read_safetensors(mlp_checkpoint)
    fc1 = report["layers"][0]
    # An eighth of fc1's weights (its mask keeps a quarter), counted as torch's l1_unstructured
    # counts the amount pruned (rounded half to even); fc2 keeps its mask as it is.
    dense = int(tensors["fc1.weight_mask"].size)
    assert int(tensors["fc1.weight_mask"].sum()) > dense // 8
    assert fc1["kept_weights"] == dense - round(0.875 * dense)
    assert report["layers"][1]["kept_weights"] == int(tensors["fc2.weight_mask"].sum())


def test_dtype_per_layer_kind(tmp_path, mlp_checkpoint):
    model = ticket.load(_export(tmp_path, mlp_checkpoint, "conv=k8,linear=k4"))
    assert [layer["value_codec"] for layer in model.info["layers"]] == ["k4", "k4"]


def _export(tmp_path, checkpoint, dtype):
    out = tmp_path / f"m-{dtype}.safetensors"
    ticket.export(checkpoint, out, dtype=dtype)
    return out


def test_a_csr_file_is_re_encoded(tmp_path, mlp_checkpoint):
    # The f32 CSR file exported again as k4 predicts as the checkpoint's own k4 export.
    f32 = tmp_path / "m.f32.safetensors"
    ticket.export(mlp_checkpoint, f32)
    direct = ticket.load(_export(tmp_path, mlp_checkpoint, "k4"))
    again = tmp_path / "m.k4-again.safetensors"
    report = ticket.export(f32, again, dtype="k4")
    assert report["total"]["csr_file_bytes"] == again.stat().st_size
    x = np.random.default_rng(3).random((5, 64), dtype=np.float32)
    np.testing.assert_array_equal(ticket.load(again).predict(x), direct.predict(x))
