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

# Training step: criterion bench, then ticket vs PyTorch on Fashion-MNIST in one run.
bench-train: setup
    cargo bench --bench train_step
    cargo build --release
    .venv/bin/python benches/compare_train.py --iterations 3000 --threads 2

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

# The paper's experiment on Fashion-MNIST (3,000 iterations per level instead of 50,000), with
# the random-reinit control, then its report.
paper-fmnist:
    cargo run --release -- find --model lenet-300-100 --dataset fashion-mnist --iterations 3000 --levels 18 --reinit-control --out runs/paper-fmnist --no-export
    cargo run --release -- report runs/paper-fmnist

# The whole IMP protocol timed end to end, ticket vs PyTorch, with per-level accuracy.
bench-imp: setup
    cargo build --release
    .venv/bin/python benches/compare_imp.py --levels 18 --iterations 3000

# Sparse vs dense kernels (LeNet-300-100 at 100..1% density, a 4096x4096 layer) beside a STREAM triad.
bench-infer:
    cargo bench --bench infer_kernels

# One CSR model through PyTorch dense, PyTorch CSR, scipy and `ticket infer --bench`, with ratios.
bench-compare: setup
    cargo build --release
    .venv/bin/python benches/compare_infer.py

# Fuzz one loader (idx, checkpoint, csr, recipe, graph) until stopped; libFuzzer flags may follow
# (`just fuzz csr -max_total_time=600`). Needs `cargo install cargo-fuzz`; RUSTC_BOOTSTRAP=1
# lets a stable toolchain accept cargo-fuzz's sanitizer flags. See fuzz/README.md.
fuzz TARGET *ARGS:
    mkdir -p fuzz/corpus/{{TARGET}}
    cd fuzz && RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run {{TARGET}} corpus/{{TARGET}} seeds/{{TARGET}} -- {{ARGS}}
