//! A random CSR layer at batch 1, against inputs with 50-90 % zeros: the CSR product, the
//! product in slices of 16 rows (`kernels::sliced`, the row product where a gather pays) and
//! the zero-skipping column-ordered one (`kernels::csc`), median times, and what
//! `ColumnCopy::pays` would choose. For checking that choice on another machine.
//!
//!     cargo run --release -p ticket-infer --features fixture --example csc_ab -- ROWS COLS DENSITY

use std::time::Instant;
use ticket_core::Par;
use ticket_infer::fixture::{CsrParts, Random};
use ticket_infer::kernels::csc::ColumnCopy;
use ticket_infer::kernels::sliced::SlicedRows;
use ticket_infer::{kernels, Activation, CsrRef};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (rows, cols, density): (usize, usize, f64) =
        (args[1].parse().unwrap(), args[2].parse().unwrap(), args[3].parse().unwrap());
    let mut rng = Random::new(4);
    let w = CsrParts::random(rows, cols, density, &mut rng);
    let idx = w.indices_u16();
    let csr = CsrRef::new(rows, cols, &w.indptr, &idx, &w.values).unwrap();
    let copy = ColumnCopy::new(csr);
    let sliced = SlicedRows::new(csr);
    let mut y = vec![0.0f32; rows];
    let (mut list, mut sums) = (Vec::new(), Vec::new());
    for zeros in [0.5, 0.6, 0.7, 0.8, 0.9] {
        let x: Vec<f32> = (0..cols)
            .map(|_| if rng.unit() < zeros { 0.0 } else { rng.uniform(-1.0, 1.0) })
            .collect();
        let time = |f: &mut dyn FnMut()| {
            let mut all = vec![];
            for _ in 0..3000 {
                let t = Instant::now();
                f();
                all.push(t.elapsed().as_secs_f64() * 1e6);
            }
            all.sort_by(|a, b| a.partial_cmp(b).unwrap());
            all[1500]
        };
        let a =
            time(&mut || kernels::spmv(csr, Some(&w.bias), &x, &mut y, Activation::Relu, Par::Seq));
        let b = time(&mut || {
            copy.nonzero_columns(&x, &mut list);
            copy.spmv(Some(&w.bias), &x, &list, &mut y, Activation::Relu)
        });
        let c =
            time(&mut || sliced.spmv(Some(&w.bias), &x, &mut y, Activation::Relu, (1, &mut sums)));
        let work = copy.nonzero_columns(&x, &mut list);
        println!(
            "zeros {zeros}: csr {a:.2} us, sliced {c:.2} us (chosen: {}), columns {b:.2} us, \
             pays() says {}, work {work} of {}",
            SlicedRows::pays(),
            copy.pays(work, 1),
            copy.nnz()
        );
    }
}
