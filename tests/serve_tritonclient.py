#!/usr/bin/env python3
"""`ticket serve` called by Triton's own Python client (`tritonclient[http]`), with JSON and
with binary tensors, synchronous and concurrent: the logits must match those of the
independent numpy/scipy reader of docs/FORMAT.md (benches/ticket_reader.py) on the same
files, an MLP and a conv model of the bad-input corpus's valid set. Ends with SIGTERM, after
which the server must exit 0.

    python tests/serve_tritonclient.py [--ticket target/release/ticket]

Needs numpy, scipy, safetensors and tritonclient[http]; prints `N passed, M failed` and exits
non-zero on any failure.
"""
import argparse
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
import ticket_reader  # noqa: E402

MODELS = {
    "mlp": ROOT / "tests/corpus/valid/model.safetensors",
    "conv": ROOT / "tests/corpus/valid/conv-model.safetensors",
}


def start(ticket):
    args = [ticket, "serve", "--port", "0"]
    for name, path in MODELS.items():
        args += ["--model", f"{name}={path}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    address = next((w for w in line.split() if w.startswith("http://")), None)
    if address is None:
        proc.kill()
        raise SystemExit(f"no address in the start-up line {line!r}")
    return proc, address.removeprefix("http://")


def inputs(model, batch, seed):
    shape = [batch, *model.graph.input]
    return np.random.default_rng(seed).random(shape, dtype=np.float32) - 0.25


def infer(client, name, x, binary, outputs=("logits", "class")):
    tensor = http.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    asked = [http.InferRequestedOutput(o, binary_data=binary) for o in outputs]
    return client.infer(name, [tensor], outputs=asked, request_id=f"{name}-{binary}")


def check_logits(got, model, x, what):
    want = model.logits(x.reshape(x.shape[0], -1))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=what)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticket", default=str(ROOT / "target/release/ticket"))
    args = ap.parse_args()
    reference = {name: ticket_reader.load(str(path)) for name, path in MODELS.items()}
    proc, url = start(args.ticket)
    client = http.InferenceServerClient(url, concurrency=8)
    results = []

    def case(fn):
        try:
            fn()
            results.append((fn.__name__, None))
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            results.append((fn.__name__, traceback.format_exc()))

    def health_and_metadata():
        assert client.is_server_live() and client.is_server_ready()
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        for name, model in reference.items():
            assert client.is_model_ready(name), name
            meta = client.get_model_metadata(name)
            assert meta["inputs"][0]["shape"] == [-1, *model.graph.input], meta
            assert meta["outputs"][0]["name"] == "logits", meta
            assert client.get_model_config(name)["max_batch_size"] == 64

    def json_and_binary_tensors():
        for name, model in reference.items():
            for binary in (False, True):
                x = inputs(model, 3, 1)
                r = infer(client, name, x, binary)
                assert r.get_response()["id"] == f"{name}-{binary}"
                check_logits(r.as_numpy("logits"), model, x, f"{name} binary={binary}")
                np.testing.assert_array_equal(r.as_numpy("class"), r.as_numpy("logits").argmax(1))

    def flattened_conv_input_and_default_outputs():
        model = reference["conv"]
        x = inputs(model, 2, 2).reshape(2, -1)
        tensor = http.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)  # binary by default, no outputs named: logits
        check_logits(client.infer("conv", [tensor]).as_numpy("logits"), model, x, "flattened conv")

    def concurrent_requests():
        model = reference["mlp"]
        xs = [inputs(model, 1 + i % 3, 10 + i) for i in range(32)]
        pending = []
        for i, x in enumerate(xs):
            tensor = http.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=i % 2 == 0)
            pending.append(client.async_infer("mlp", [tensor]))
        for i, (x, p) in enumerate(zip(xs, pending)):
            check_logits(p.get_result().as_numpy("logits"), model, x, f"async request {i}")

    def errors_are_exceptions_with_the_status():
        model = reference["mlp"]
        bad = np.zeros((1, model.graph.input[0] + 1), dtype=np.float32)
        for name, x, status, needle in [
            ("mlp", bad, "400", "the model takes"),
            ("nope", inputs(model, 1, 0), "404", "unknown model 'nope'"),
        ]:
            try:
                infer(client, name, x, True)
            except InferenceServerException as e:
                assert e.status() == status and needle in e.message(), (e.status(), e.message())
            else:
                raise AssertionError(f"{name}: no error")
        assert client.is_server_live()

    for fn in (health_and_metadata, json_and_binary_tensors, flattened_conv_input_and_default_outputs,
               concurrent_requests, errors_are_exceptions_with_the_status):
        case(fn)
    client.close()

    def sigterm_exits_0():
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert code == 0, f"exit code {code}"

    case(sigterm_exits_0)
    if proc.poll() is None:
        proc.kill()
    failed = [(n, tb) for n, tb in results if tb]
    for name, tb in results:
        print(f"{'FAIL' if tb else 'ok  '} {name}")
        if tb:
            print(tb)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
