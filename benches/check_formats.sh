#!/usr/bin/env bash
# The model files ticket writes, read by independent readers: builds ticket, finds a small
# pruned MLP ticket and a pruned conv ticket (digits-mlp and digits-conv, one or two levels of 100
# iterations) and a conv checkpoint with random weights and masks, exports each with f32, f16,
# bf16, int8 and k-means codebook values and with absolute and gap-coded indices (one width,
# one per layer kind and auto), and runs
# benches/read_dense_checkpoint.py and benches/read_csr_model.py on every file, in a virtual
# environment with only numpy, scipy and safetensors. The CSR readers assert the logits against
# the dense checkpoint (per value dtype), the export report's byte counts against the files and
# `ticket infer --input/--output` against the reference reader. The version-1 fixtures are read too. Exits non-zero on any failure.
#
#     benches/check_formats.sh            # or: just check-formats
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${FORMATS_VENV:-$root/target/formats-venv}"
out="${FORMATS_OUT:-$root/target/check-formats}"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check numpy scipy safetensors
py="$venv/bin/python"

cargo build --release --quiet --bin ticket
cargo build --release --quiet -p ticket-export --example random_checkpoint
ticket="$root/target/release/ticket"
random_checkpoint="$root/target/release/examples/random_checkpoint"

rm -rf "$out"
mkdir -p "$out"

# MLP: a pruned level of a real (short) IMP run.
"$ticket" find --model digits-mlp --levels 2 --iterations 100 --threads 1 --no-export \
    --out "$out/mlp" > /dev/null
mlp_dense="$out/mlp/level_02/final.safetensors"

# Conv: the digits-conv graph (conv2d with padding, maxpool2d, flatten, linear), trained and
# pruned, and with random weights and masks.
"$ticket" find --model digits-conv --levels 1 --iterations 100 --threads 1 --no-export \
    --out "$out/conv" > /dev/null
conv_dense="$out/conv/level_01/final.safetensors"
random_dense="$out/random-conv.safetensors"
"$random_checkpoint" digits-conv "$random_dense" 0.3 7

check() { # NAME DENSE INFER(0/1)
    local name="$1" dense="$2" infer="$3"
    "$py" benches/read_dense_checkpoint.py "$dense"
    for codecs in f32 f16 bf16 int8 k6 k4:5 k2:8 f32:3 int8:6 f16:conv=3,linear=5 \
        conv=k6,linear=k4:auto; do
        local dtype="${codecs%%:*}" bits=()
        if [ "$codecs" != "$dtype" ]; then bits=(--index-bits "${codecs#*:}"); fi
        local csr="$out/$name-${codecs/:/-gap}.safetensors"
        "$ticket" export "$dense" --dtype "$dtype" "${bits[@]}" --out "$csr" --force --json \
            > "$csr.json"
        local args=(--dense "$dense" --report "$csr.json")
        if [ "$infer" = 1 ]; then args+=(--ticket "$ticket"); fi
        "$py" benches/read_csr_model.py "$csr" "${args[@]}"
    done
}
check mlp "$mlp_dense" 1
check conv "$conv_dense" 1
check random-conv "$random_dense" 1

# Version 1 (MLP `arch`) files written by an earlier ticket stay readable.
v1=crates/export/tests/fixtures/v1
"$py" benches/read_dense_checkpoint.py "$v1/dense.safetensors"
for dtype in f32 f16 bf16; do
    "$py" benches/read_csr_model.py "$v1/csr-$dtype.safetensors" --dense "$v1/dense.safetensors" \
        --ticket "$ticket"
done
echo "check-formats: every file read back as documented"
