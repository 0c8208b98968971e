"""Bad input raises a Python exception with the one-line cause; nothing crashes."""

import numpy as np
import pytest

import ticket


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        ticket.load(tmp_path / "nope.safetensors")


def test_ticket_error_is_a_value_error():
    assert issubclass(ticket.TicketError, ValueError)


@pytest.mark.parametrize("cut", [0, 7, 100, -1])
def test_truncated_model_names_the_file(tmp_path, conv_model, cut):
    path, _, _ = conv_model
    data = path.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: cut if cut >= 0 else len(data) - 9])
    with pytest.raises(ticket.TicketError, match="truncated.safetensors: ") as err:
        ticket.load(bad)
    assert "\n" not in str(err.value)


def test_not_a_model(tmp_path):
    bad = tmp_path / "notes.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"a": 1}        ')
    with pytest.raises(ticket.TicketError, match="notes.safetensors"):
        ticket.load(bad)


def test_export_refuses_to_overwrite(tmp_path, mlp_checkpoint):
    out = tmp_path / "m.safetensors"
    ticket.export(mlp_checkpoint, out)
    with pytest.raises(FileExistsError, match="force=True"):
        ticket.export(mlp_checkpoint, out)
    ticket.export(mlp_checkpoint, out, force=True)


@pytest.mark.parametrize(
    "options, message",
    [({"dtype": "f8"}, "unknown value dtype"), ({"dataset": "imagenet"}, "unknown data set")],
)
def test_export_bad_options(tmp_path, mlp_checkpoint, options, message):
    with pytest.raises(ticket.TicketError, match=message):
        ticket.export(mlp_checkpoint, tmp_path / "m.safetensors", **options)
    assert not (tmp_path / "m.safetensors").exists()


def test_nan_weights_are_refused_on_export(tmp_path, mlp_checkpoint):
    data = bytearray(mlp_checkpoint.read_bytes())
    # The first weight of fc1 (after the header) becomes NaN.
    from conftest import read_safetensors  # noqa: PLC0415

    import json, struct  # noqa: E401, PLC0415

    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    start = 8 + n + header["fc1.weight"]["data_offsets"][0]
    mask_start = 8 + n + header["fc1.weight_mask"]["data_offsets"][0]
    data[start : start + 4] = np.float32("nan").tobytes()
    data[mask_start] = 1
    bad = tmp_path / "nan.safetensors"
    bad.write_bytes(bytes(data))
    assert np.isnan(read_safetensors(bad)[0]["fc1.weight"][0, 0])
    with pytest.raises(ticket.TicketError, match="nan.safetensors.*NaN"):
        ticket.export(bad, tmp_path / "out.safetensors")
