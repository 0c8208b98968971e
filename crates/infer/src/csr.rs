//! A CSR matrix over borrowed slices (`indptr`, column `indices`, `f32` values), validated once
//! when it is built so that the kernels can index without further checks.
//!
//! ```
//! use ticket_infer::CsrRef;
//! // [[0, 2], [3, 0]]
//! let w = CsrRef::new(2, 2, &[0, 1, 2], &[1u16, 0], &[2.0, 3.0]).unwrap();
//! assert_eq!(w.nnz(), 2);
//! assert!(CsrRef::new(2, 2, &[0, 2, 1], &[1u16, 0], &[2.0, 3.0]).is_err());
//! ```

use crate::{Error, Result};
use safetensors::Dtype;

mod sealed {
    pub trait Sealed {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

/// A column index type of the format: `u16` (up to 65,536 columns) or `u32`.
pub trait ColIndex: bytemuck::Pod + Send + Sync + std::fmt::Debug + sealed::Sealed {
    /// The safetensors dtype this index is stored as.
    const DTYPE: Dtype;
    fn to_usize(self) -> usize;
}

macro_rules! col_index {
    ($($t:ty => $dtype:ident),*) => {$(
        impl ColIndex for $t {
            const DTYPE: Dtype = Dtype::$dtype;
            #[inline(always)]
            fn to_usize(self) -> usize {
                self as usize
            }
        }
    )*};
}
col_index!(u16 => U16, u32 => U32);

/// A validated `rows x cols` CSR matrix: row `r` holds `values[indptr[r]..indptr[r + 1]]` at
/// columns `indices[indptr[r]..indptr[r + 1]]`, strictly increasing and below `cols`.
#[derive(Clone, Copy, Debug)]
pub struct CsrRef<'a, I: ColIndex> {
    rows: usize,
    cols: usize,
    indptr: &'a [u32],
    indices: &'a [I],
    values: &'a [f32],
}

impl<'a, I: ColIndex> CsrRef<'a, I> {
    /// Checks the structure (O(nnz)) and builds the view.
    pub fn new(
        rows: usize,
        cols: usize,
        indptr: &'a [u32],
        indices: &'a [I],
        values: &'a [f32],
    ) -> Result<Self> {
        check_structure(rows, cols, indptr, indices).map_err(Error::Csr)?;
        CsrRef { rows, cols, indptr, indices, values: &[] }.with_values(values)
    }

    /// Builds a view whose structure the caller has already checked with [`check_structure`]
    /// on these very slices.
    pub(crate) fn new_prechecked(
        rows: usize,
        cols: usize,
        indptr: &'a [u32],
        indices: &'a [I],
        values: &'a [f32],
    ) -> Self {
        debug_assert!(check_structure(rows, cols, indptr, indices).is_ok());
        assert_eq!(values.len(), indices.len(), "one value per index");
        CsrRef { rows, cols, indptr, indices, values }
    }

    /// The same structure with other values (O(1)): a trainer keeps the pattern of a mask and
    /// swaps in the weights of every step.
    pub fn with_values<'b>(self, values: &'b [f32]) -> Result<CsrRef<'b, I>>
    where
        'a: 'b,
    {
        if values.len() != self.indices.len() {
            return Err(Error::Csr(format!(
                "{} values for {} column indices",
                values.len(),
                self.indices.len()
            )));
        }
        Ok(CsrRef { values, ..self })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn indptr(&self) -> &'a [u32] {
        self.indptr
    }

    pub fn indices(&self) -> &'a [I] {
        self.indices
    }

    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    /// Writes every stored value into the row-major `rows x cols` matrix `dense`, and 1 into
    /// `mask` at the same places; other entries are left as they are.
    pub fn scatter_into(&self, dense: &mut [f32], mask: Option<&mut [u8]>) {
        assert_eq!(dense.len(), self.rows * self.cols, "scatter_into: dense length");
        let mut mask = mask;
        for r in 0..self.rows {
            for k in self.row_range(r) {
                let at = r * self.cols + self.indices[k].to_usize();
                dense[at] = self.values[k];
                if let Some(m) = mask.as_deref_mut() {
                    m[at] = 1;
                }
            }
        }
    }

    /// The range of `indices` / `values` that holds row `r`.
    #[inline(always)]
    pub fn row_range(&self, r: usize) -> std::ops::Range<usize> {
        self.indptr[r] as usize..self.indptr[r + 1] as usize
    }
}

/// The kept entries (`mask != 0`) of a row-major `rows x cols` matrix in CSR order:
/// `(indptr, column indices, values)`.
pub fn compress(
    weight: &[f32],
    mask: &[u8],
    rows: usize,
    cols: usize,
) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    assert_eq!(weight.len(), rows * cols, "compress: weight length");
    assert_eq!(mask.len(), rows * cols, "compress: mask length");
    let (mut indptr, mut indices, mut values) = (Vec::with_capacity(rows + 1), vec![], vec![]);
    indptr.push(0u32);
    for r in 0..rows {
        for c in 0..cols {
            if mask[r * cols + c] != 0 {
                indices.push(c as u32);
                values.push(weight[r * cols + c]);
            }
        }
        indptr.push(indices.len() as u32);
    }
    (indptr, indices, values)
}

/// An owned, checked sparsity pattern (the structure of a CSR matrix without its values): what
/// a trainer keeps for a pruned layer while the values change every step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrPattern<I: ColIndex> {
    rows: usize,
    cols: usize,
    indptr: Vec<u32>,
    indices: Vec<I>,
}

impl<I: ColIndex> CsrPattern<I> {
    /// Checks the structure once (O(nnz)).
    pub fn new(rows: usize, cols: usize, indptr: Vec<u32>, indices: Vec<I>) -> Result<Self> {
        check_structure(rows, cols, &indptr, &indices).map_err(Error::Csr)?;
        Ok(CsrPattern { rows, cols, indptr, indices })
    }

    /// The matrix with these `values` (O(1)); panics unless there is one value per index.
    pub fn with_values<'a>(&'a self, values: &'a [f32]) -> CsrRef<'a, I> {
        CsrRef::new_prechecked(self.rows, self.cols, &self.indptr, &self.indices, values)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn indptr(&self) -> &[u32] {
        &self.indptr
    }

    pub fn indices(&self) -> &[I] {
        &self.indices
    }
}

/// Checks that `indptr` / `indices` describe a `rows x cols` CSR matrix: `rows + 1` offsets
/// starting at 0, never decreasing, ending at `indices.len()`; column indices below `cols` and
/// strictly increasing within each row. Returns the first problem found.
pub fn check_structure<I: ColIndex>(
    rows: usize,
    cols: usize,
    indptr: &[u32],
    indices: &[I],
) -> std::result::Result<(), String> {
    if indptr.len() != rows + 1 {
        return Err(format!(
            "indptr has {} entries, expected rows + 1 = {}",
            indptr.len(),
            rows + 1
        ));
    }
    if indptr[0] != 0 {
        return Err(format!("indptr starts at {}, expected 0", indptr[0]));
    }
    let nnz = indices.len();
    for (r, pair) in indptr.windows(2).enumerate() {
        let (start, end) = (pair[0] as usize, pair[1] as usize);
        if end < start {
            return Err(format!("indptr decreases at row {r} ({start} then {end})"));
        }
        if end > nnz {
            return Err(format!("indptr of row {r} ends at {end}, past the {nnz} column indices"));
        }
    }
    if indptr[rows] as usize != nnz {
        return Err(format!("indptr ends at {}, but there are {nnz} column indices", indptr[rows]));
    }
    for (r, pair) in indptr.windows(2).enumerate() {
        let row = &indices[pair[0] as usize..pair[1] as usize];
        if let Some(bad) = row.iter().find(|c| c.to_usize() >= cols) {
            return Err(format!(
                "row {r} has column index {}, but the matrix has {cols} columns",
                bad.to_usize()
            ));
        }
        if let Some(w) = row.windows(2).find(|w| w[0].to_usize() >= w[1].to_usize()) {
            return Err(format!(
                "column indices of row {r} are not strictly increasing ({} then {})",
                w[0].to_usize(),
                w[1].to_usize()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(indptr: &[u32], indices: &[u16]) -> String {
        check_structure(2, 4, indptr, indices).unwrap_err()
    }

    #[test]
    fn accepts_empty_rows_and_empty_matrices() {
        assert!(check_structure::<u16>(2, 4, &[0, 0, 2], &[1, 3]).is_ok());
        assert!(check_structure::<u32>(3, 4, &[0, 0, 0, 0], &[]).is_ok());
        assert!(check_structure::<u32>(0, 4, &[0], &[]).is_ok());
    }

    #[test]
    fn names_each_structural_problem() {
        assert_eq!(problem(&[0, 2], &[0, 1]), "indptr has 2 entries, expected rows + 1 = 3");
        assert_eq!(problem(&[1, 1, 2], &[0, 1]), "indptr starts at 1, expected 0");
        assert_eq!(problem(&[0, 2, 1], &[0, 1]), "indptr decreases at row 1 (2 then 1)");
        assert_eq!(
            problem(&[0, 1, 3], &[0, 1]),
            "indptr of row 1 ends at 3, past the 2 column indices"
        );
        assert_eq!(
            problem(&[0, 1, 1], &[0, 1]),
            "indptr ends at 1, but there are 2 column indices"
        );
        assert_eq!(
            problem(&[0, 2, 2], &[1, 4]),
            "row 0 has column index 4, but the matrix has 4 columns"
        );
        assert_eq!(
            problem(&[0, 2, 2], &[2, 1]),
            "column indices of row 0 are not strictly increasing (2 then 1)"
        );
        assert_eq!(
            problem(&[0, 1, 3], &[0, 2, 2]),
            "column indices of row 1 are not strictly increasing (2 then 2)"
        );
    }

    #[test]
    fn values_must_match_indices() {
        let err = CsrRef::new(1, 3, &[0, 2], &[0u32, 2], &[1.0]).unwrap_err().to_string();
        assert_eq!(err, "invalid CSR matrix: 1 values for 2 column indices");
        let w = CsrRef::new(1, 3, &[0, 2], &[0u32, 2], &[1.0, 2.0]).unwrap();
        let other = [5.0, 6.0];
        assert_eq!(w.with_values(&other).unwrap().values(), [5.0, 6.0]);
        assert!(w.with_values(&[1.0]).is_err());
    }
}
