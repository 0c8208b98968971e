#!/usr/bin/env bash
# Regenerates the seed corpora of the fuzz targets from files ticket itself writes: a small
# experiment on the embedded digits (dense checkpoints with masks, and one without), its ticket
# exported with f32, f16, bf16, int8 and codebook values (gap indices too), a tiny conv model (tiny-conv.toml, random weights and
# masks) as checkpoint and CSR files, the version-1 files of crates/export/tests/fixtures/v1,
# the shipped recipes and their graphs as JSON, and two Fashion-MNIST examples as IDX files
# (raw and gzip), and the example sweep files. Run from anywhere; writes
# fuzz/seeds/{checkpoint,csr,recipe,graph,idx,sweep}
# (fuzz/seeds/packed holds two hand-made streams and is left alone).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release --quiet
cargo build --release --quiet -p ticket-export --example random_checkpoint
ticket="$root/target/release/ticket"
random_checkpoint="$root/target/release/examples/random_checkpoint"
seeds="$root/fuzz/seeds"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$seeds"/{checkpoint,csr,recipe,graph,idx,sweep}
mkdir -p "$seeds"/{checkpoint,csr,recipe,graph,idx,sweep}

# A 64-8-10 network keeps every file a few KB; two levels prune both layers.
sed -e 's/^layers = .*/layers = [64, 8, 10]/' \
    -e 's/^layer_rates = .*/layer_rates = [0.5, 0.2]/' \
    -e 's/^iterations = .*/iterations = 100/' \
    models/digits-mlp.toml > "$tmp/tiny.toml"
"$ticket" find --model "$tmp/tiny.toml" --levels 2 --no-export --threads 1 --out "$tmp/exp" > /dev/null
cp "$tmp/exp/level_00/init.safetensors" "$seeds/checkpoint/dense-init.safetensors"
cp "$tmp/exp/level_02/final.safetensors" "$seeds/checkpoint/pruned.safetensors"
python3 fuzz/seeds/strip_masks.py "$tmp/exp/level_00/final.safetensors" \
    "$seeds/checkpoint/no-masks.safetensors"
for dtype in f32 f16 bf16; do
    "$ticket" export "$tmp/exp" --level 2 --dtype "$dtype" \
        --out "$seeds/csr/pruned-$dtype.safetensors" > /dev/null
done

# Conv: every layer kind and option in 72 weights.
"$random_checkpoint" fuzz/seeds/tiny-conv.toml "$seeds/checkpoint/conv.safetensors" 0.5 3 > /dev/null
for dtype in f32 f16 bf16; do
    "$ticket" export "$seeds/checkpoint/conv.safetensors" --dtype "$dtype" \
        --out "$seeds/csr/conv-$dtype.safetensors" > /dev/null
done

# Compressed codecs (format 2.1): codebook and int8 values, gap indices.
for codecs in k3:4 int8:6 k6:8; do
    for model in pruned conv; do
        "$ticket" export "$seeds/checkpoint/$model.safetensors" --dtype "${codecs%%:*}" \
            --index-bits "${codecs#*:}" \
            --out "$seeds/csr/$model-${codecs%%:*}-gap${codecs#*:}.safetensors" > /dev/null
    done
done

# Version 1, as an earlier ticket wrote it.
v1=crates/export/tests/fixtures/v1
cp "$v1/dense.safetensors" "$seeds/checkpoint/v1-pruned.safetensors"
for dtype in f32 f16 bf16; do
    cp "$v1/csr-$dtype.safetensors" "$seeds/csr/v1-pruned-$dtype.safetensors"
done

cp models/*.toml fuzz/seeds/tiny-conv.toml "$tmp/tiny.toml" "$seeds/recipe/"
cp sweeps/*.toml tests/corpus/valid/sweep.toml "$seeds/sweep/"

# The graph of every recipe as ticket writes it into `__metadata__["graph"]`.
for recipe in models/*.toml fuzz/seeds/tiny-conv.toml; do
    name="$(basename "$recipe" .toml)"
    "$random_checkpoint" "$recipe" --graph | tr -d '\n' > "$seeds/graph/$name.json"
done

# IDX: the first two Fashion-MNIST training images and labels, with headers for two examples.
fmnist=/usr/share/datasets/fashion-mnist
{ printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c'
  zcat "$fmnist/train-images-idx3-ubyte.gz" | tail -c +17 | head -c 1568 || true
} > "$seeds/idx/images-idx3-ubyte"
{ printf '\x00\x00\x08\x01\x00\x00\x00\x02'
  zcat "$fmnist/train-labels-idx1-ubyte.gz" | tail -c +9 | head -c 2 || true
} > "$seeds/idx/labels-idx1-ubyte"
gzip -9 -n -c "$seeds/idx/images-idx3-ubyte" > "$seeds/idx/images-idx3-ubyte.gz"
gzip -9 -n -c "$seeds/idx/labels-idx1-ubyte" > "$seeds/idx/labels-idx1-ubyte.gz"
ls -l "$seeds"/{checkpoint,csr,recipe,graph,idx,sweep}

# Import: PyTorch-written single-file ONNX exports and state dicts, and the corpus's valid ones.
rm -rf "$seeds"/{onnx,state_dict}
mkdir -p "$seeds"/{onnx,state_dict}
fixtures=tests/fixtures/import
cp "$fixtures"/{mlp,conv}-dynamo-false{,-nofold}.onnx "$fixtures/mlp-matmul-gemm.onnx" \
    tests/corpus/valid/import-model.onnx "$seeds/onnx/"
cp "$fixtures"/mlp-{pruned,attr}.safetensors tests/corpus/valid/import-state-dict.safetensors \
    "$seeds/state_dict/"
