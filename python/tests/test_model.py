"""ticket.load / Model.predict against independent computations: numpy on the dense
checkpoint, and PyTorch's stored logits for a conv net."""

import threading

import numpy as np
import pytest

import ticket
from conftest import mlp_logits


@pytest.fixture
def mlp(tmp_path, mlp_checkpoint):
    out = tmp_path / "mlp.csr.safetensors"
    ticket.export(mlp_checkpoint, out)
    return ticket.load(out)


def test_mlp_logits_match_numpy(mlp, mlp_checkpoint):
    x = np.random.default_rng(0).random((33, 64), dtype=np.float32)
    got = mlp.predict(x)
    assert got.dtype == np.float32 and got.shape == (33, 10)
    np.testing.assert_allclose(got, mlp_logits(mlp_checkpoint, x), rtol=1e-4, atol=1e-5)


def test_conv_logits_match_pytorch(conv_model):
    path, x, logits = conv_model
    model = ticket.load(path)
    assert model.input_shape == [1, 12, 12] and model.classes == 10
    np.testing.assert_allclose(model.predict(x), logits, rtol=1e-4, atol=1e-5)
    # Flattened examples are the same inputs.
    np.testing.assert_allclose(model.predict(x.reshape(7, -1)), logits, rtol=1e-4, atol=1e-5)


def test_single_example_gives_one_row(conv_model):
    path, x, logits = conv_model
    model = ticket.load(path)
    one = model.predict(x[3])
    assert one.shape == (10,)
    np.testing.assert_allclose(one, logits[3], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(model.predict(x[3:4])[0], one)


def test_other_float_dtypes_and_layouts_are_converted(mlp):
    x = np.random.default_rng(1).random((64, 16), dtype=np.float32)
    expected = mlp.predict(np.ascontiguousarray(x.T))
    np.testing.assert_array_equal(mlp.predict(x.T), expected)  # Fortran order
    np.testing.assert_array_equal(mlp.predict(x.T.astype(np.float64)), expected)
    strided = np.zeros((16, 128), np.float32)
    strided[:, ::2] = x.T
    np.testing.assert_array_equal(mlp.predict(strided[:, ::2]), expected)
    np.testing.assert_array_equal(mlp.predict(x.T.tolist()), expected)


def test_integer_inputs_are_refused(mlp):
    with pytest.raises(ticket.TicketError, match="floating-point"):
        mlp.predict(np.zeros((2, 64), np.uint8))


@pytest.mark.parametrize("shape", [(2, 63), (2, 8, 9), (0,), (64, 1)])
def test_wrong_shapes_are_refused(mlp, shape):
    with pytest.raises(ticket.TicketError, match=r"does not fit the model.*\[batch, 64\]"):
        mlp.predict(np.zeros(shape, np.float32))


def test_empty_batch(mlp):
    assert mlp.predict(np.zeros((0, 64), np.float32)).shape == (0, 10)


def test_predict_from_many_threads(conv_model):
    path, x, logits = conv_model
    model = ticket.load(path)
    batch = np.repeat(x, 40, axis=0)
    expected = model.predict(batch)
    singles = [model.predict(x[i % 7]) for i in range(8)]
    results, errors = [None] * 8, []

    def work(i):
        try:
            for _ in range(20):
                results[i] = model.predict(batch if i % 2 else x[i % 7])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, expected if i % 2 else singles[i])


def test_info_describes_the_file(conv_model):
    path, _, _ = conv_model
    info = ticket.load(path).info
    assert [layer["name"] for layer in info["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    assert info["layers"][0]["dims"] == [4, 1, 3, 3]
    assert info["kept"] == sum(layer["kept"] for layer in info["layers"])
    assert info["weights"] == 4 * 9 + 6 * 4 * 6 + 24 * 16 + 16 * 10
    assert info["density"] == pytest.approx(info["kept"] / info["weights"])
    assert info["graph"]["input"] == [1, 12, 12]
    assert info["value_codec"] == "f32" and info["index_codec"] == "absolute"
    assert info["file_bytes"] == path.stat().st_size


def test_one_thread_gives_the_same_logits(conv_model):
    path, x, _ = conv_model
    batch = np.repeat(x, 50, axis=0)
    np.testing.assert_array_equal(
        ticket.load(path, threads=1).predict(batch), ticket.load(path).predict(batch)
    )
    with pytest.raises(ticket.TicketError, match="threads"):
        ticket.load(path, threads=0)
