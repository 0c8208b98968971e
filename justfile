# Convenience recipes; every command also works without `just` (see README.md).

default:
    @just --list

# Python tools for the comparison scripts (PyTorch, ONNX Runtime, scipy, safetensors); never
# needed by tests. Does nothing when they are already installed.
setup:
    test -x .venv/bin/python || python3 -m venv .venv
    .venv/bin/python -c "import torch, onnx, onnxruntime, scipy, safetensors, numpy" 2>/dev/null || .venv/bin/pip install torch onnx onnxruntime scipy safetensors numpy

# The main job: find a ticket on the embedded digits, export it, run it sparse.
ticket:
    cargo run --release -- find

test:
    cargo test --workspace --release

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

fmt:
    cargo fmt --all

# A dense checkpoint written by ticket, read back by the Python safetensors package.
check-python-interop: setup
    cargo run --release -- train --iterations 200 --out runs/interop
    .venv/bin/python benches/read_dense_checkpoint.py runs/interop/final.safetensors

# Training step: criterion bench, then ticket vs PyTorch on Fashion-MNIST, 3 runs of each.
# Results: benches/results/compare_train-<date>.json (see benches/results/README.md).
bench-train: setup
    cargo bench --bench train_step
    cargo build --release
    .venv/bin/python benches/compare_train.py --iterations 3000 --threads 2 --repeat 3

# A CSR file written by `ticket export`, read by the Python safetensors package into scipy.sparse,
# its logits compared with those of the masked dense checkpoint it came from.
check-csr-interop: setup
    cargo run --release -- train --iterations 200 --out runs/interop
    cargo run --release -- export runs/interop/final.safetensors --out runs/interop/final.csr.safetensors --force --json > runs/interop/export.json
    .venv/bin/python benches/read_csr_model.py runs/interop/final.csr.safetensors --dense runs/interop/final.safetensors --report runs/interop/export.json

# Model files (an MLP ticket and a conv model, dense and CSR with f32/f16/bf16 values, the
# version-1 fixtures) read back by the numpy/scipy reference reader with asserted tolerances and
# byte counts; the venv it creates needs only numpy, scipy and safetensors.
check-formats:
    benches/check_formats.sh

# The reference reader against PyTorch modules built from the same files (every op and option).
check-reader-torch: setup
    cargo build --release
    .venv/bin/python benches/compare_reader_torch.py crates/export/tests/fixtures/v1/*.safetensors --ticket target/release/ticket

# The PyTorch-written fixtures of the import tests (tests/fixtures/import/): state dicts, ONNX
# files from both exporters, PyTorch's and ONNX Runtime's logits (the dynamo exporter needs
# onnxscript).
import-fixtures: setup
    .venv/bin/python -c "import onnxscript" 2>/dev/null || .venv/bin/pip install onnxscript
    .venv/bin/python tests/fixtures/import/make_fixtures.py

# The paper's experiment on Fashion-MNIST (3,000 iterations per level instead of 50,000), with
# the random-reinit control, then its report.
paper-fmnist:
    cargo run --release -- find --model lenet-300-100 --dataset fashion-mnist --iterations 3000 --levels 18 --reinit-control --threads 1 --out runs/paper-fmnist --no-export
    cargo run --release -- report runs/paper-fmnist

# LeNet-5 (Han et al.) on Fashion-MNIST, lottery-ticket style, with random-reinit controls at the
# levels around Han et al.'s 8% of the weights, then its report.
paper-lenet5:
    cargo run --release -- find --model lenet-5 --dataset fashion-mnist --iterations 2000 --eval-every 250 --levels 16 --reinit-control --control-levels 11,12,13,14,15 --threads 2 --out runs/lenet5-fmnist
    cargo run --release -- report runs/lenet5-fmnist

# Conv-2 (Frankle & Carbin) on Fashion-MNIST: a few levels, with the time each takes.
conv2-levels:
    cargo run --release -- find --model conv-2 --dataset fashion-mnist --iterations 500 --eval-every 250 --levels 2 --threads 2 --no-export --out runs/conv2-fmnist
    cargo run --release -- report runs/conv2-fmnist

# Sparse conv-net inference, ONNX Runtime and PyTorch dense vs ticket on the same CSR file, after
# checking their logits agree: random LeNet-5 (Han et al.'s densities) and Conv-2 (~11%) tickets.
# Results: benches/results/compare_conv-<date>.json.
bench-conv: setup
    cargo build --release
    .venv/bin/python benches/compare_conv.py --net lenet-5 --threads 2 --repeat 3
    .venv/bin/python benches/compare_conv.py --net conv-2 --threads 2 --repeat 3

# torchvision's AlexNet at full scale: exported by PyTorch, pruned to Han et al.'s per-layer
# fractions, written as f32 / f16 / conv=k8,linear=k5 with 5-bit gaps; file bytes, bits per kept
# weight, export and inference peak RSS, latency against ONNX Runtime (2 threads), open time.
# Results: benches/results/alexnet-<date>.json.
bench-alexnet: setup
    .venv/bin/python -c "import torchvision, onnxscript" 2>/dev/null || .venv/bin/pip install torchvision onnxscript
    cargo build --release
    .venv/bin/python benches/alexnet.py --threads 2

# The whole IMP protocol timed end to end, ticket vs PyTorch, 3 runs of each, with per-level
# accuracy and seconds (dense and sparse levels apart).
# Results: benches/results/compare_imp-<date>.json.
bench-imp: setup
    cargo build --release
    .venv/bin/python benches/compare_imp.py --levels 18 --iterations 3000 --threads 2 --repeat 3

# The same IMP with the dense masked path only (--sparse-below 0) and with the default sparse
# engine, 3 runs of each: per-level accuracy differences and seconds.
# Results: benches/results/compare_sparse_engine-<date>.json.
bench-sparse-engine: setup
    cargo build --release
    .venv/bin/python benches/compare_sparse_engine.py --levels 18 --iterations 3000 --threads 2 --repeat 3

# Sparse vs dense kernels (LeNet-300-100 at 100..1% density, a 4096x4096 layer) beside a STREAM triad.
bench-infer:
    cargo bench --bench infer_kernels

# LeNet-300-100 from files in every codec, decoded on the fly, against its f32 CSR file (batch
# 1, 64, 1024, one thread): criterion, then the same side by side on a real ticket through
# `ticket infer --bench` (RUN and LEVEL: an IMP run and its level), 3 runs of each.
# Results: benches/results/compare_codecs-<date>.json.
bench-codecs RUN="runs/paper-fmnist" LEVEL="16": setup
    cargo bench --bench compressed_kernels
    cargo build --release
    .venv/bin/python benches/compare_codecs.py {{RUN}} --level {{LEVEL}} --repeat 3

# One CSR model through PyTorch dense, PyTorch CSR, scipy, ONNX Runtime and `ticket infer
# --bench`, 3 runs of each: batch 1 Python-hosted and kernel-only, batches 64 and 1024.
# Results: benches/results/compare_infer-<date>.json.
bench-compare: setup
    cargo build --release
    .venv/bin/python benches/compare_infer.py --threads 2 --repeat 3

# Every compressed codec on the Fashion-MNIST tickets of `just paper-fmnist` (LeNet-300-100) and
# of the LeNet-5 run in README.md: file bytes, bits per kept weight, accuracy per codec.
sweep-fmnist LENET="runs/paper-fmnist" LEVEL="16" LENET5="runs/lenet5-fmnist" LEVEL5="16":
    cargo build --release
    target/release/ticket export {{LENET}} --level {{LEVEL}} --sweep --dataset fashion-mnist | tee benches/results/export-sweep-lenet300-fmnist-level{{LEVEL}}.txt
    target/release/ticket export {{LENET5}} --level {{LEVEL5}} --sweep --dataset fashion-mnist | tee benches/results/export-sweep-lenet5-fmnist-level{{LEVEL5}}.txt

# The same sweeps with every kN codebook fine-tuned for ITERS steps on the training split
# (`--finetune`; float and int8 rows unchanged). Results: benches/results/export-sweep-finetune-*.txt.
sweep-finetune-fmnist ITERS="2000" LENET="runs/paper-fmnist" LEVEL="16" LENET5="runs/lenet5-fmnist" LEVEL5="16":
    cargo build --release
    target/release/ticket export {{LENET}} --level {{LEVEL}} --sweep --dataset fashion-mnist --finetune {{ITERS}} | tee benches/results/export-sweep-finetune{{ITERS}}-lenet300-fmnist-level{{LEVEL}}.txt
    target/release/ticket export {{LENET5}} --level {{LEVEL5}} --sweep --dataset fashion-mnist --finetune {{ITERS}} | tee benches/results/export-sweep-finetune{{ITERS}}-lenet5-fmnist-level{{LEVEL5}}.txt

# Peak resident memory of one ticket as k4 + 6-bit gaps and as f32 CSR in `ticket infer`,
# against the same network dense in PyTorch and ONNX Runtime processes, 3 runs of each.
# Results: benches/results/compare_footprint-<date>.json.
bench-footprint DIR="runs/paper-fmnist" LEVEL="16": setup
    cargo build --release
    mkdir -p target/footprint
    target/release/ticket export {{DIR}} --level {{LEVEL}} --dtype k4 --index-bits 6 --out target/footprint/k4-gap6.safetensors --force
    target/release/ticket export {{DIR}} --level {{LEVEL}} --out target/footprint/f32.safetensors --force
    .venv/bin/python benches/compare_footprint.py target/footprint/k4-gap6.safetensors --also target/footprint/f32.safetensors --threads 2 --repeat 3

# Fuzz one loader (idx, checkpoint, csr, recipe, graph, packed) until stopped; libFuzzer flags may follow
# (`just fuzz csr -max_total_time=600`). Needs `cargo install cargo-fuzz`; RUSTC_BOOTSTRAP=1
# lets a stable toolchain accept cargo-fuzz's sanitizer flags. See fuzz/README.md.
fuzz TARGET *ARGS:
    mkdir -p fuzz/corpus/{{TARGET}}
    cd fuzz && RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run {{TARGET}} corpus/{{TARGET}} seeds/{{TARGET}} -- {{ARGS}}

# `ticket serve` against KServe's Python ModelServer + ONNX Runtime on the same weights, under
# wrk (Debian package) at concurrency 1, 16 and 64, one run side by side.
# Results: benches/results/compare_serve-<date>.json.
bench-serve: setup
    command -v wrk >/dev/null || (echo "wrk not found: apt-get install wrk" && exit 1)
    .venv/bin/python -c "import kserve" 2>/dev/null || .venv/bin/pip install kserve
    cargo build --release
    .venv/bin/python benches/compare_serve.py --duration 5 --repeat 3

# Parsing one infer request of 784 inputs, JSON (as Python clients write it) and binary.
bench-serve-request:
    cargo bench --bench serve_request

# The Python package in a fresh virtual environment, then its tests.
test-python:
    rm -rf target/python-venv && python3 -m venv target/python-venv
    target/python-venv/bin/pip install ./python pytest
    target/python-venv/bin/python -m pytest -q -rs python/tests

# What the Python binding adds to a batch-1 forward pass, against `ticket infer --bench`.
# Results: benches/results/compare_python-<date>.json.
bench-python MODEL: test-python
    cargo build --release
    target/python-venv/bin/python benches/compare_python.py {{MODEL}}
