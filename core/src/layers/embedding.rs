//! Token embedding: a lookup in a `vocab x dim` table, written as a matrix product.
//!
//! In plaintext training the tokens are public and a lookup would do, but in two-party
//! training they are secret: a lookup by a secret index is not a local operation. So the
//! tokens enter as one-hot rows (element scale: 1.0 encoded) and the embedding is one
//! matrix product `onehot x table` with one rescale (exact on `Plain`: every term is 0 or
//! a table entry times `2^f`); backward is `onehot^T x dy`. The same code runs on every
//! engine; [`Embedding::one_hot`] builds the rows from public token ids (a two-party host
//! shares them instead).

use super::transpose;
use crate::engine::MatDims;
use crate::Engine;

/// An embedding of `vocab` tokens in `dim` dimensions. The table is `vocab x dim`
/// row-major.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Embedding {
    /// Number of tokens.
    pub vocab: usize,
    /// Dimension of each embedding.
    pub dim: usize,
}

impl Embedding {
    /// The layer.
    pub const fn new(vocab: usize, dim: usize) -> Self {
        Embedding { vocab, dim }
    }

    /// Entries in the table.
    pub const fn weights(&self) -> usize {
        self.vocab * self.dim
    }

    /// `out` (`tokens.len() x vocab`) = the one-hot rows of `tokens`, at element scale:
    /// zeros, then the public 1.0 added at each token's column.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a token is not below `vocab` or `out` has the wrong length.
    pub fn one_hot<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        tokens: &[usize],
        out: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        assert_eq!(
            out.len(),
            tokens.len() * self.vocab,
            "one_hot: shape mismatch"
        );
        out.fill(E::Elem::default());
        let one = e.public(1.0);
        for (i, &t) in tokens.iter().enumerate() {
            assert!(
                t < self.vocab,
                "one_hot: token {t} not below {}",
                self.vocab
            );
            let at = i * self.vocab + t;
            e.add_public(&mut out[at..at + 1], one)?;
        }
        Ok(())
    }

    /// `y = onehot x table` for `rows` one-hot rows: one matrix product, one rescale.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length.
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        onehot: &[E::Elem],
        table: &[E::Elem],
        rows: usize,
        y: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let dims = MatDims {
            m: rows,
            k: self.vocab,
            n: self.dim,
        };
        e.matmul(onehot, table, dims, y)?;
        e.rescale(y)
    }

    /// Scratch for [`Embedding::backward`]: the transposed one-hot rows.
    pub const fn backward_scratch(&self, rows: usize) -> usize {
        rows * self.vocab
    }

    /// `dtable = onehot^T x dy` (overwritten; rows of tokens that do not occur are 0):
    /// one matrix product, one rescale. There is no input gradient (tokens are data).
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        onehot: &[E::Elem],
        dy: &[E::Elem],
        rows: usize,
        dtable: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let ot = &mut scratch[..rows * self.vocab];
        transpose(onehot, rows, self.vocab, ot);
        let dims = MatDims {
            m: self.vocab,
            k: rows,
            n: self.dim,
        };
        e.matmul(ot, dy, dims, dtable)?;
        e.rescale(dtable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check, values, Case};
    use crate::layers::testutil::{compare_engines, Harness};
    use crate::Float;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    const TOKENS: [usize; 7] = [3, 0, 5, 3, 2, 6, 0];

    #[test]
    fn forward_is_a_lookup_and_gradient_matches_finite_differences() {
        let l = Embedding::new(8, 4);
        let rows = TOKENS.len();
        let mut e = Float::<f64>::new();
        let mut oh = vec![0.0; rows * 8];
        l.one_hot(&mut e, &TOKENS, &mut oh).unwrap();
        let table = values(1, l.weights());
        let mut y = vec![0.0; rows * 4];
        l.forward(&mut e, &oh, &table, rows, &mut y).unwrap();
        for (i, &t) in TOKENS.iter().enumerate() {
            assert_eq!(y[i * 4..(i + 1) * 4], table[t * 4..(t + 1) * 4]);
        }
        check(
            &Case::new(0, l.weights(), rows * 4, 2),
            |_, p, y| {
                l.forward(&mut Float::<f64>::new(), &oh, p, rows, y)
                    .unwrap();
            },
            |_, _, dy, _, dp| {
                let mut s = vec![0.0; l.backward_scratch(rows)];
                l.backward(&mut Float::<f64>::new(), &oh, dy, rows, dp, &mut s)
                    .unwrap();
            },
        );
    }

    struct Body(Embedding);

    impl Harness for Body {
        fn run<E: Engine>(&self, e: &mut E, ins: &[Vec<E::Elem>]) -> Vec<Vec<E::Elem>> {
            let l = self.0;
            let rows = TOKENS.len();
            let z = E::Elem::default();
            let mut oh = vec![z; rows * l.vocab];
            l.one_hot(e, &TOKENS, &mut oh).unwrap();
            let (mut y, mut dt) = (vec![z; rows * l.dim], vec![z; l.weights()]);
            let mut s = vec![z; l.backward_scratch(rows)];
            l.forward(e, &oh, &ins[0], rows, &mut y).unwrap();
            l.backward(e, &oh, &ins[1], rows, &mut dt, &mut s).unwrap();
            vec![y, dt]
        }
    }

    /// The lookup is exact on the encoded table (half an ulp of encoding); each gradient
    /// row sums the `dy` rows of one token exactly: half an ulp per occurrence (at most 2).
    #[test]
    fn plain_matches_float() {
        let l = Embedding::new(8, 4);
        let ins = vec![values(3, l.weights()), values(4, TOKENS.len() * 4)];
        for f in [16u32, 20] {
            let u = crate::fixed::pow2(-(f as i32));
            compare_engines(&Body(l), f, &ins, &[0.5 * u, 1.0 * u]);
        }
    }
}
