# Convenience recipes; every command also works without `just` (see README.md).

default:
    @just --list

# Python tools for the comparison scripts (PyTorch, scipy, safetensors); never needed by tests.
setup:
    python3 -m venv .venv
    .venv/bin/pip install torch scipy safetensors numpy

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

# Sparse vs dense kernels (LeNet-300-100 at 100..1% density, a 4096x4096 layer) beside a STREAM triad.
bench-infer:
    cargo bench --bench infer_kernels

# One CSR model through PyTorch dense, PyTorch CSR, scipy and `ticket infer --bench`, with ratios.
bench-compare: setup
    cargo build --release
    .venv/bin/python benches/compare_infer.py
