//! Damaged copies of PyTorch-written files (bytes flipped, cut short, repeated), thousands of
//! them, through the importer: each is refused with one line naming the file, or imported
//! as a consistent network, and never panics. A deterministic stand-in for the fuzz targets
//! that runs with the tests.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use ticket_import::{from_bytes, ImportOptions};

/// xorshift64*: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match rng.below(4) {
        0 => b.truncate(rng.below(b.len())),
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let i = rng.below(b.len());
            b[i] = [0x00, 0xff, 0x7f, 0x80][rng.below(4)];
        }
        _ => {
            let (start, len) = (rng.below(b.len()), 1 + rng.below(16));
            let piece: Vec<u8> = b[start..(start + len).min(b.len())].to_vec();
            let at = rng.below(b.len());
            b.splice(at..at, piece);
        }
    }
    b
}

fn check(file: &str, name: &str, cases: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/import");
    let valid = std::fs::read(dir.join(file)).unwrap();
    let path = Path::new(name);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut accepted) = (0, 0);
    for case in 0..cases {
        let bytes = mutate(&valid, &mut rng);
        let result =
            catch_unwind(AssertUnwindSafe(|| from_bytes(&bytes, path, &ImportOptions::default())));
        match result {
            Err(_) => panic!("{file}: mutation {case} panicked"),
            Ok(Err(e)) => {
                let text = e.to_string();
                assert!(
                    text.starts_with(&format!("{name}: ")) && !text.contains('\n'),
                    "{file} case {case}: {text}"
                );
                refused += 1;
            }
            Ok(Ok(imported)) => {
                let net = imported.net;
                for (layer, shape) in net.layers.iter().zip(net.graph.layer_shapes()) {
                    assert_eq!(
                        (layer.weight.len(), layer.mask.len(), layer.bias.len()),
                        (shape.len(), shape.len(), shape.rows)
                    );
                    assert!(layer
                        .weight
                        .iter()
                        .zip(&layer.mask)
                        .all(|(&w, &m)| m == 1 || w == 0.0));
                }
                accepted += 1;
            }
        }
    }
    // Both outcomes occur: the mutations reach past the first check.
    assert!(refused > 0 && accepted > 0, "{file}: {refused} refused, {accepted} accepted");
}

#[test]
fn damaged_onnx_files_never_panic() {
    check("mlp-dynamo-false-nofold.onnx", "m.onnx", 3000);
    check("conv-dynamo-false-nofold.onnx", "m.onnx", 3000);
}

#[test]
fn damaged_state_dicts_never_panic() {
    check("mlp-pruned.safetensors", "m.safetensors", 3000);
}
