#!/usr/bin/env python3
"""Reference reader of ticket's model files (docs/FORMAT.md), written from that specification
alone: numpy for everything, scipy.sparse for CSR weights. It reads both formats (`ticket-dense`
and `ticket-csr`), version 2 (any graph: linear, conv2d, relu, maxpool2d, avgpool2d, flatten)
and version 1 (MLPs), the compressed codecs of version 2.1 (int8 and k-means codebook values,
N-bit gap column indices, decoded from their packed bit streams), validates what the
specification says a reader must check, and runs the forward pass.

    from ticket_reader import load
    model = load("model.safetensors")        # either format, detected from `format`
    logits = model.logits(x)                 # x: float32 [batch, *input] or [batch, features]

    python benches/ticket_reader.py MODEL [--input x.safetensors --output logits.safetensors]
"""
import argparse
import json
import math
import sys

import numpy as np
import scipy.sparse

READ_VERSIONS = {1, 2}
NUMPY_DTYPES = {"F32": "<f4", "F16": "<f2", "U8": "u1", "I8": "i1", "U16": "<u2", "U32": "<u4",
                "I64": "<i8"}
VALUE_DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
MAX_U16_COLS = 65536


class FormatError(Exception):
    """A file that does not follow docs/FORMAT.md; the message names the file."""


class SafetensorsFile:
    """The container: an 8-byte little-endian header length, a JSON header, the data."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = f.read()
        if len(self.buf) < 8:
            self.fail("shorter than the 8-byte header length")
        n = int.from_bytes(self.buf[:8], "little")
        if 8 + n > len(self.buf):
            self.fail(f"header length {n} runs past the end of the file")
        try:
            header = json.loads(self.buf[8:8 + n])
        except ValueError as e:
            self.fail(f"header is not JSON: {e}")
        self.meta = header.pop("__metadata__", None) or {}
        self.header = header
        self.data_start = 8 + n

    def fail(self, problem):
        raise FormatError(f"{self.path}: {problem}")

    def key(self, key):
        if key not in self.meta:
            self.fail(f"metadata has no `{key}` entry")
        return self.meta[key]

    def tensor(self, name, dtype, shape=None):
        """The tensor `name` as a 1-D numpy array, after checking its dtype and shape."""
        info = self.header.get(name)
        if info is None:
            self.fail(f"missing tensor `{name}`")
        if info["dtype"] != dtype:
            self.fail(f"tensor `{name}` has dtype {info['dtype']}, expected {dtype}")
        if shape is not None and list(info["shape"]) != list(shape):
            self.fail(f"tensor `{name}` has shape {info['shape']}, expected {list(shape)}")
        begin, end = info["data_offsets"]
        count = math.prod(info["shape"])
        width = 2 if dtype == "BF16" else np.dtype(NUMPY_DTYPES[dtype]).itemsize
        if not 0 <= begin <= end <= len(self.buf) - self.data_start or end - begin != count * width:
            self.fail(f"tensor `{name}` has data offsets {info['data_offsets']} that do not "
                      f"hold {count} values of {dtype}")
        raw = self.buf[self.data_start + begin:self.data_start + end]
        if dtype == "BF16":  # the upper 16 bits of an f32
            return (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
        return np.frombuffer(raw, NUMPY_DTYPES[dtype])

    def shape_of(self, name):
        return list(self.header[name]["shape"]) if name in self.header else None


# --- the graph --------------------------------------------------------------------------------

def pair(layer, key, default, where, nullable=False):
    """Field `key` as [height, width]; `default` when absent (or null, where `nullable`)."""
    if key not in layer or (nullable and layer[key] is None):
        if default is None:
            raise ValueError(f"{where}: `{key}` is missing")
        return list(default)
    value = layer[key]
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and v >= 0 for v in value)):
        raise ValueError(f"{where}: `{key}` must be two non-negative integers, got {value}")
    return value


def window(size, kernel, stride, padding, where):
    if 0 in kernel or 0 in stride:
        raise ValueError(f"{where}: kernel {kernel} and stride {stride} must be positive")
    out = []
    for d in range(2):
        padded = size[d] + 2 * padding[d]
        if padded < kernel[d]:
            raise ValueError(f"{where}: kernel {kernel} is larger than its input {size}")
        out.append((padded - kernel[d]) // stride[d] + 1)
    return out


FIELDS = {"linear": {"name", "in", "out"},
          "conv2d": {"name", "in", "out", "kernel", "stride", "padding"},
          "relu": set(), "flatten": set(),
          "maxpool2d": {"kernel", "stride"}, "avgpool2d": {"kernel", "stride"}}


class Graph:
    """The checked graph: layers with their defaults filled in, and the shape after each."""

    def __init__(self, spec):
        if not isinstance(spec, dict) or set(spec) != {"input", "layers"}:
            raise ValueError("a graph is an object with exactly `input` and `layers`")
        shape = spec["input"]
        if (not isinstance(shape, list) or len(shape) not in (1, 3)
                or not all(isinstance(d, int) and d > 0 for d in shape)):
            raise ValueError(f"input must be [features] or [C, H, W], positive, got {shape}")
        self.input = list(shape)
        self.layers, self.shapes, self.weighted = [], [], []
        for i, layer in enumerate(spec["layers"]):
            op = layer.get("op")
            if op not in FIELDS:
                raise ValueError(f"layer {i}: unknown op `{op}`")
            unknown = set(layer) - FIELDS[op] - {"op"}
            if unknown:
                raise ValueError(f"layer {i} ({op}): unknown fields {sorted(unknown)}")
            where = f"layer {i} ({op} `{layer['name']}`)" if "name" in layer else f"layer {i} ({op})"
            layer = dict(layer)
            if op == "linear":
                if shape != [layer["in"]]:
                    raise ValueError(f"{where}: in = {layer['in']}, but its input is {shape}")
                shape = [layer["out"]]
                dims = [layer["out"], layer["in"]]
            elif op == "conv2d":
                layer["stride"] = pair(layer, "stride", [1, 1], where)
                layer["padding"] = pair(layer, "padding", [0, 0], where)
                layer["kernel"] = pair(layer, "kernel", None, where)
                if len(shape) != 3 or shape[0] != layer["in"]:
                    raise ValueError(f"{where}: in = {layer['in']}, but its input is {shape}")
                shape = [layer["out"]] + window(shape[1:], layer["kernel"], layer["stride"],
                                                layer["padding"], where)
                dims = [layer["out"], layer["in"]] + layer["kernel"]
            elif op in ("maxpool2d", "avgpool2d"):
                layer["kernel"] = pair(layer, "kernel", None, where)
                layer["stride"] = pair(layer, "stride", layer["kernel"], where, nullable=True)
                if len(shape) != 3:
                    raise ValueError(f"{where}: takes [C, H, W], its input is {shape}")
                shape = shape[:1] + window(shape[1:], layer["kernel"], layer["stride"], [0, 0],
                                           where)
            elif op == "flatten":
                shape = [math.prod(shape)]
            if op in ("linear", "conv2d"):
                name = layer["name"]
                if not isinstance(name, str) or not name or "," in name:
                    raise ValueError(f"{where}: needs a plain, non-empty name")
                if any(w["name"] == name for w in self.weighted):
                    raise ValueError(f"{where}: repeats the name `{name}`")
                self.weighted.append({"name": name, "dims": dims,
                                      "rows": dims[0], "cols": math.prod(dims[1:])})
            if 0 in shape:
                raise ValueError(f"{where}: empty output {shape}")
            self.layers.append(layer)
            self.shapes.append(shape)
        if not self.weighted:
            raise ValueError("a graph needs at least one linear or conv2d layer")
        if len(shape) != 1:
            raise ValueError(f"the last layer gives {shape}, but logits are a vector")

    @staticmethod
    def mlp(arch):
        """Version 1: `784-300-100-10` = fc1..fcN with ReLU between them."""
        sizes = [int(s) for s in arch.split("-")]
        layers = []
        for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            if k > 1:
                layers.append({"op": "relu"})
            layers.append({"op": "linear", "name": f"fc{k}", "in": n_in, "out": n_out})
        return Graph({"input": sizes[:1], "layers": layers})


def read_graph(f, fmt):
    """Checks `format` and the major version; the graph of version 2, the MLP of version 1."""
    if f.meta.get("format") != fmt:
        f.fail(f"format is `{f.meta.get('format')}`, expected `{fmt}`")
    version = f.key("format_version")
    major = version.split(".")[0]
    if not major.isdigit() or int(major) not in READ_VERSIONS:
        f.fail(f"format_version `{version}` is not supported (versions 1 and 2 are)")
    try:
        if int(major) >= 2:
            return Graph(json.loads(f.key("graph")))
        if f.key("activation") != "relu":
            f.fail(f"activation `{f.meta['activation']}` is not relu")
        return Graph.mlp(f.key("arch"))
    except (ValueError, KeyError, TypeError) as e:
        f.fail(f"metadata `{'graph' if int(major) >= 2 else 'arch'}`: {e!r}")


# --- compressed layers (format 2.1) ------------------------------------------------------------

def fields(raw, count, n):
    """`count` fields of `n` bits from a packed U8 stream, least significant bit first."""
    bits = np.unpackbits(raw, bitorder="little")[: count * n].reshape(count, n)
    return bits.astype(np.int64) @ (1 << np.arange(n, dtype=np.int64))


def value_codec_ok(value):
    return value in VALUE_DTYPES or value == "int8" or (
        value[:1] == "k" and value[1:].isdigit() and 2 <= int(value[1:]) <= 8)


def codec_of(f):
    """(value codec per layer kind {"conv": .., "linear": ..}, index bits per layer kind) from
    `value_dtype` (one codec, or `conv=<codec>,linear=<codec>`) and `index_bits`."""
    text = f.key("value_dtype")
    if "=" in text:
        parts = dict(p.partition("=")[::2] for p in text.split(","))
        value = {"conv": parts.get("conv", ""), "linear": parts.get("linear", "")}
        if sorted(parts) != ["conv", "linear"]:
            f.fail(f"unknown value_dtype `{text}`")
    else:
        value = {"conv": text, "linear": text}
    if not all(value_codec_ok(v) for v in value.values()):
        f.fail(f"unknown value_dtype `{text}`")
    return value, index_bits_of(f)


def index_bits_of(f):
    """Gap width per layer kind {"conv": N or None, "linear": ..} from `index_bits`: absent
    (None: absolute indices), one width `N`, or `conv=N,linear=M` (a kind not named is None)."""
    text = f.meta.get("index_bits")
    if text is None:
        return {"conv": None, "linear": None}
    parts = [p.strip().partition("=") for p in text.split(",")]
    if "=" not in text:
        bits = {"conv": text.strip(), "linear": text.strip()}
    else:
        kinds = [k.strip() for k, _, _ in parts]
        if any(k not in ("conv", "linear") for k in kinds) or len(set(kinds)) != len(kinds):
            f.fail(f"metadata `index_bits` = `{text}` names an unknown or repeated layer kind")
        bits = {"conv": None, "linear": None}
        bits.update({k.strip(): v.strip() for k, _, v in parts})
    for b in bits.values():
        if b is not None and not (b.isdigit() and 3 <= int(b) <= 8):
            f.fail(f"metadata `index_bits` = `{text}` is not 3..8")
    return {k: None if b is None else int(b) for k, b in bits.items()}


def gap_columns(f, name, raw, indptr, n, cols):
    """Column of every entry from the gap stream of one layer (fillers skipped), checked."""
    count = len(raw) * 8 // n
    fld = fields(raw, count, n)
    fill, out, i = (1 << n) - 1, [], 0
    for r in range(len(indptr) - 1):
        nxt, left = 0, int(indptr[r + 1] - indptr[r])
        while left:
            if i >= count:
                f.fail(f"layer {name}: the gap stream ends in row {r} ({left} entries missing)")
            if fld[i] == fill:
                nxt += fill
            else:
                col = nxt + int(fld[i])
                if col >= cols:
                    f.fail(f"layer {name}: row {r} has column {col} >= {cols}")
                out.append(col)
                nxt, left = col + 1, left - 1
            i += 1
    if len(raw) != (i * n + 7) // 8 or (i * n % 8 and raw[-1] >> (i * n % 8)):
        f.fail(f"layer {name}: the gap stream does not end after its last row")
    return np.array(out, dtype=np.int64)


def compressed_values(f, name, value, indptr, rows):
    """The f32 value of every entry under `value` (int8 or kN)."""
    nnz = int(indptr[-1])
    if value == "int8":
        q = f.tensor(f"{name}.weight.values", "I8", [nnz]).astype(np.float32)
        scales = f.tensor(f"{name}.weight.scales", "F32", [rows])
        if not np.all(np.isfinite(scales)):
            f.fail(f"layer {name}: a scale is NaN or infinite")
        return (np.repeat(scales, np.diff(indptr)) * q).astype(np.float32)
    n = int(value[1:])
    book_shape = f.shape_of(f"{name}.weight.codebook")
    if book_shape is None or len(book_shape) != 1 or not 1 <= book_shape[0] <= 1 << n:
        f.fail(f"layer {name}: the codebook must be F32 [K] with 1 <= K <= {1 << n}")
    book = f.tensor(f"{name}.weight.codebook", "F32", book_shape)
    if not np.all(np.isfinite(book)):
        f.fail(f"layer {name}: a codebook entry is NaN or infinite")
    raw = f.tensor(f"{name}.weight.values", "U8", [(nnz * n + 7) // 8])
    codes = fields(raw, nnz, n)
    if nnz * n % 8 and raw[-1] >> (nnz * n % 8):
        f.fail(f"layer {name}: nonzero padding bits after the codebook indices")
    if np.any(codes >= len(book)):
        f.fail(f"layer {name}: codebook index {codes.max()} out of range ({len(book)} entries)")
    return book[codes]


# --- the forward pass -------------------------------------------------------------------------

def patches(x, kernel, stride, padding):
    """x [B, C, H, W] -> windows [B, OH, OW, C, kh, kw] (zero padding, floor mode)."""
    (ph, pw), (sh, sw) = padding, stride
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))
    return win[:, :, ::sh, ::sw].transpose(0, 2, 3, 1, 4, 5)


def times_transposed(w, x):
    """x @ w.T for a dense ndarray or a scipy.sparse matrix w [rows, cols], x [n, cols]."""
    return np.asarray(w @ x.T).T


class Model:
    """A graph plus, per weighted layer, its weight as a [rows, cols] matrix and its bias."""

    def __init__(self, graph, weights, biases, meta):
        self.graph, self.weights, self.biases, self.meta = graph, weights, biases, meta

    def logits(self, x, dtype=np.float32):
        """Logits [batch, classes] of x [batch, *input] or [batch, features], computed in
        `dtype` (float64 gives a reference that f32 results are measured against)."""
        x = np.asarray(x, dtype=dtype).reshape([-1] + self.graph.input)
        k = 0
        for layer, shape in zip(self.graph.layers, self.graph.shapes):
            op = layer["op"]
            if op == "linear":
                x = times_transposed(self.weights[k].astype(dtype), x) + self.biases[k]
                k += 1
            elif op == "conv2d":
                p = patches(x, layer["kernel"], layer["stride"], layer["padding"])
                batch, oh, ow = p.shape[:3]
                cols = p.reshape(batch * oh * ow, -1)  # column (c*kh + i)*kw + j
                y = times_transposed(self.weights[k].astype(dtype), cols) + self.biases[k]
                x = y.reshape(batch, oh, ow, -1).transpose(0, 3, 1, 2)
                k += 1
            elif op == "relu":
                x = np.maximum(x, 0)
            elif op == "maxpool2d":
                x = patches(x, layer["kernel"], layer["stride"], [0, 0]).max(axis=(4, 5))
                x = x.transpose(0, 3, 1, 2)
            elif op == "avgpool2d":
                x = patches(x, layer["kernel"], layer["stride"], [0, 0]).mean(axis=(4, 5))
                x = x.transpose(0, 3, 1, 2)
            elif op == "flatten":
                x = x.reshape(x.shape[0], -1)
            assert list(x.shape[1:]) == shape, (op, x.shape, shape)
        return np.ascontiguousarray(x, dtype=dtype)


def load_dense(path):
    """A `ticket-dense` checkpoint; weights are multiplied by their masks."""
    f = SafetensorsFile(path)
    graph = read_graph(f, "ticket-dense")
    for key in ("iteration", "seed"):
        if not f.key(key).isdigit():
            f.fail(f"metadata `{key}` = `{f.meta[key]}` is not valid")
    f.key("dataset")
    names = [w["name"] for w in graph.weighted]
    masked = [n for n in names if f"{n}.weight_mask" in f.header]
    if masked and len(masked) != len(names):
        f.fail(f"masks for {len(masked)} of {len(names)} layers")
    weights, biases = [], []
    for w in graph.weighted:
        name = w["name"]
        weight = f.tensor(f"{name}.weight", "F32", w["dims"])
        if masked:
            mask = f.tensor(f"{name}.weight_mask", "U8", w["dims"])
            if mask.max(initial=0) > 1:
                f.fail(f"tensor `{name}.weight_mask` holds {mask.max()}; masks hold 0 and 1")
            weight = weight * mask
        weights.append(weight.reshape(w["rows"], w["cols"]))
        biases.append(f.tensor(f"{name}.bias", "F32", [w["rows"]]))
    return Model(graph, weights, biases, f.meta)


def load_csr(path):
    """A `ticket-csr` model: one scipy.sparse.csr_matrix per weighted layer."""
    f = SafetensorsFile(path)
    graph = read_graph(f, "ticket-csr")
    names = [w["name"] for w in graph.weighted]
    if f.key("layers") != ",".join(names):
        f.fail(f"metadata `layers` = `{f.meta['layers']}` does not match the graph's {names}")
    codecs, index_bits = codec_of(f)
    weights, biases = [], []
    for w in graph.weighted:
        name, rows, cols = w["name"], w["rows"], w["cols"]
        kind = "conv" if len(w["dims"]) == 4 else "linear"
        value, gap_bits = codecs[kind], index_bits[kind]
        value_dtype = VALUE_DTYPES.get(value)
        shape = f.tensor(f"{name}.weight.shape", "I64", [len(w["dims"])])
        if shape.tolist() != w["dims"]:
            f.fail(f"layer {name}: shape {shape.tolist()} does not match the graph's {w['dims']}")
        indptr = f.tensor(f"{name}.weight.indptr", "U32", [rows + 1]).astype(np.int64)
        nnz = int(indptr[-1])
        if indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            f.fail(f"layer {name}: indptr must start at 0 and never decrease")
        if gap_bits is None:
            index_dtype = "U16" if cols <= MAX_U16_COLS else "U32"
            indices = f.tensor(f"{name}.weight.indices", index_dtype, [nnz]).astype(np.int64)
        else:
            raw = f.tensor(f"{name}.weight.indices", "U8", f.shape_of(f"{name}.weight.indices"))
            indices = gap_columns(f, name, raw, indptr, gap_bits, cols)
        if value_dtype is not None:
            values = f.tensor(f"{name}.weight.values", value_dtype, [nnz]).astype(np.float32)
        else:
            values = compressed_values(f, name, value, indptr, rows)
        row_of = np.repeat(np.arange(rows), np.diff(indptr))
        same_row = row_of[1:] == row_of[:-1]
        if np.any(indices >= cols) or np.any(same_row & (np.diff(indices) <= 0)):
            f.fail(f"layer {name}: column indices must be < {cols} and increase within a row")
        if not np.all(np.isfinite(values)):
            f.fail(f"layer {name}: a value is NaN or infinite")
        weights.append(scipy.sparse.csr_matrix((values, indices, indptr), shape=(rows, cols)))
        biases.append(f.tensor(f"{name}.bias", "F32", [rows]))
        if not np.all(np.isfinite(biases[-1])):
            f.fail(f"layer {name}: a bias is NaN or infinite")
    return Model(graph, weights, biases, f.meta)


def load(path):
    """Either format, chosen by the file's `format`."""
    fmt = SafetensorsFile(path).meta.get("format")
    return load_csr(path) if fmt == "ticket-csr" else load_dense(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--input", help="safetensors file with tensor `input` F32 [batch, *input]")
    p.add_argument("--output", help="where to write tensor `logits` F32 [batch, classes]")
    args = p.parse_args()
    try:
        model = load(args.model)
    except FormatError as e:
        sys.exit(f"error: {e}")
    g = model.graph
    print(f"{args.model}: {model.meta['format']} v{model.meta['format_version']}, "
          f"input {g.input}, {len(g.layers)} layers, weighted "
          f"{', '.join(w['name'] + ' ' + 'x'.join(map(str, w['dims'])) for w in g.weighted)}")
    if args.input:
        from safetensors.numpy import load_file, save_file
        logits = model.logits(load_file(args.input)["input"])
        if args.output:
            save_file({"logits": logits}, args.output)
        print(f"logits {list(logits.shape)}")


if __name__ == "__main__":
    main()
