//! Pooling over NCHW images: max pooling, average pooling and global average pooling.
//!
//! Windows are square, without padding; the output is `(h - k) / s + 1` by
//! `(w - k) / s + 1`. Each pooling gathers the `k^2` window offsets side by side (a local
//! copy) so that one engine call serves every window of the batch.
//!
//! # Max pooling and the secret argmax
//! The maximum is a halving tree over the `k^2` offsets, each level one batched
//! [`Engine::max_pair`] (`ceil(log2 k^2)` of them). Nothing about which element won is ever
//! held in plaintext form: forward can write the tree's **comparison bits** (`k^2 - 1` per
//! window, engine elements at integer scale, shares on a two-party engine) into a
//! caller-provided buffer; backward routes the output gradient down the tree with them
//! ([`route_tree`](crate::engine::generic::route_tree): one product per bit, no rescale)
//! and folds the result back. Backward does not recompute the tree. Ties go to the lower
//! offset, so exactly one element per window gets the gradient.

use super::windows::{Strided, Windows};
use super::{column_sums_in_place, divide_by, transpose, Image};
use crate::Engine;

fn windows(input: Image, k: usize, s: usize) -> Windows {
    Windows::new(input.height, input.width, k, s, 0)
}

fn pooled(input: Image, g: &Windows) -> Image {
    Image::new(input.batch, input.channels, g.oh, g.ow)
}

/// `v[j * N + q * P + p] = x[plane q, window p, offset j]`, `N = planes * P`.
fn gather_offsets<T: Copy + Default>(g: &Windows, x: &[T], planes: usize, v: &mut [T]) {
    let (pl, nn) = (g.positions(), planes * g.positions());
    g.gather(x, planes, v, |q| q * pl, 1, nn);
}

/// Max pooling with a square `kernel` and `stride`, no padding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MaxPool2d {
    /// Window side.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
}

impl MaxPool2d {
    /// The layer.
    pub const fn new(kernel: usize, stride: usize) -> Self {
        MaxPool2d { kernel, stride }
    }

    /// The output shape for `input`.
    ///
    /// # Panics
    /// If the kernel or stride is 0 or larger than the input.
    pub fn output(&self, input: Image) -> Image {
        pooled(input, &windows(input, self.kernel, self.stride))
    }

    /// Length of the selection bits: the tree's `kernel^2 - 1` comparisons per output
    /// element.
    pub fn selection_len(&self, input: Image) -> usize {
        crate::engine::generic::max_tree_bits(self.kernel * self.kernel) * self.output(input).len()
    }

    /// Scratch for [`MaxPool2d::forward`]: with `N` output elements and `K = kernel^2`,
    /// `K N` candidates and the tree's [`max_tree_scratch`](crate::engine::generic::max_tree_scratch).
    pub fn forward_scratch(&self, input: Image) -> usize {
        let (kk, nn) = (self.kernel * self.kernel, self.output(input).len());
        kk * nn + crate::engine::generic::max_tree_scratch(kk, nn)
    }

    /// `y = max over each window`, and the tree's comparison bits into `sel` when given
    /// (layout `[comparison][output element]`, [`MaxPool2d::selection_len`] elements),
    /// which [`MaxPool2d::backward`] needs.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    ///
    /// Plaintext engines run blocks of whole planes of about [`Engine::batch_hint`] outputs
    /// (every operation is elementwise, so the results are the same), which keeps the
    /// intermediate values in cache; a two-party engine runs the whole batch at once.
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        input: Image,
        y: &mut [E::Elem],
        mut sel: Option<&mut [E::Elem]>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let g = windows(input, self.kernel, self.stride);
        let (kk, nn, pl) = (g.offsets(), pooled(input, &g).len(), g.positions());
        assert!(
            x.len() == input.len() && y.len() == nn,
            "max pool forward: shape mismatch"
        );
        if let Some(s) = sel.as_deref() {
            assert_eq!(
                s.len(),
                self.selection_len(input),
                "max pool forward: selection length"
            );
        }
        let planes = input.planes();
        let per = (e.batch_hint() / pl.max(1)).max(1);
        if pl == 0 || 2 * per >= planes {
            return Self::forward_planes(e, &g, x, planes, y, sel, scratch);
        }
        // Blocks of `per` planes: at most half the batch, so the block's own selection
        // bits fit in the scratch beside the block's working space.
        let bits = crate::engine::generic::max_tree_bits(kk);
        let (local, scratch) = scratch.split_at_mut(bits * per * pl);
        let hw = input.plane();
        for q0 in (0..planes).step_by(per) {
            let q1 = (q0 + per).min(planes);
            let nb = (q1 - q0) * pl;
            let ls = &mut local[..bits * nb];
            Self::forward_planes(
                e,
                &g,
                &x[q0 * hw..q1 * hw],
                q1 - q0,
                &mut y[q0 * pl..q1 * pl],
                sel.is_some().then_some(&mut *ls),
                scratch,
            )?;
            if let Some(s) = sel.as_deref_mut() {
                for (j, bits) in ls.chunks(nb).enumerate() {
                    s[j * nn + q0 * pl..j * nn + q1 * pl].copy_from_slice(bits);
                }
            }
        }
        Ok(())
    }

    /// [`MaxPool2d::forward`] on `planes` whole planes at once, over the windows `g`.
    fn forward_planes<E: Engine + ?Sized>(
        e: &mut E,
        g: &Windows,
        x: &[E::Elem],
        planes: usize,
        y: &mut [E::Elem],
        sel: Option<&mut [E::Elem]>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (kk, nn) = (g.offsets(), planes * g.positions());
        let (v, rest) = scratch.split_at_mut(kk * nn);
        gather_offsets(g, x, planes, v);
        e.max_tree(v, kk, sel, rest)?;
        y.copy_from_slice(&v[..nn]);
        Ok(())
    }

    /// Scratch for [`MaxPool2d::backward`].
    pub fn backward_scratch(&self, input: Image) -> usize {
        let (kk, nn) = (self.kernel * self.kernel, self.output(input).len());
        kk * nn + crate::engine::generic::route_tree_scratch(kk, nn) + input.len()
    }

    /// `dx` (overwritten) from the output gradient `dy` and the comparison bits of the
    /// forward pass: `dy` routed down the tree (one multiplication per bit, without
    /// rescale), then local additions.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        sel: &[E::Elem],
        dy: &[E::Elem],
        input: Image,
        dx: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let g = windows(input, self.kernel, self.stride);
        let (kk, nn, pl) = (g.offsets(), pooled(input, &g).len(), g.positions());
        assert!(
            sel.len() == self.selection_len(input) && dy.len() == nn && dx.len() == input.len(),
            "max pool backward: shape mismatch"
        );
        let (prod, rest) = scratch.split_at_mut(kk * nn);
        crate::engine::generic::route_tree(e, sel, kk, dy, prod, rest)?;
        g.scatter_add(
            e,
            Strided {
                data: prod,
                base: |q| q * pl,
                p_stride: 1,
                j_stride: nn,
            },
            input.planes(),
            dx,
            rest,
        )
    }
}

/// Average pooling with a square `kernel` and `stride`, no padding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AvgPool2d {
    /// Window side.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
}

impl AvgPool2d {
    /// The layer.
    pub const fn new(kernel: usize, stride: usize) -> Self {
        AvgPool2d { kernel, stride }
    }

    /// The output shape for `input`.
    ///
    /// # Panics
    /// If the kernel or stride is 0 or larger than the input.
    pub fn output(&self, input: Image) -> Image {
        pooled(input, &windows(input, self.kernel, self.stride))
    }

    /// Scratch for [`AvgPool2d::forward`]: the gathered windows.
    pub fn forward_scratch(&self, input: Image) -> usize {
        self.kernel * self.kernel * self.output(input).len()
    }

    /// `y = (sum over each window) * (1 / kernel^2)`: local additions, then one product
    /// with the public constant and one rescale.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        input: Image,
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let g = windows(input, self.kernel, self.stride);
        let (kk, nn) = (g.offsets(), pooled(input, &g).len());
        assert!(
            x.len() == input.len() && y.len() == nn,
            "avg pool forward: shape mismatch"
        );
        let v = &mut scratch[..kk * nn];
        gather_offsets(&g, x, input.planes(), v);
        y.copy_from_slice(&v[..nn]);
        for j in 1..kk {
            e.add_assign(y, &v[j * nn..(j + 1) * nn])?;
        }
        e.scale(y, 1.0 / kk as f64)
    }

    /// Scratch for [`AvgPool2d::backward`].
    pub fn backward_scratch(&self, input: Image) -> usize {
        self.output(input).len() + input.len()
    }

    /// `dx` (overwritten): every element of a window receives `dy / kernel^2` (one product
    /// and rescale per output element, then local additions).
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        dy: &[E::Elem],
        input: Image,
        dx: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let g = windows(input, self.kernel, self.stride);
        let (kk, nn, pl) = (g.offsets(), pooled(input, &g).len(), g.positions());
        assert!(
            dy.len() == nn && dx.len() == input.len(),
            "avg pool backward: shape mismatch"
        );
        let (t, rest) = scratch.split_at_mut(nn);
        t.copy_from_slice(dy);
        e.scale(t, 1.0 / kk as f64)?;
        g.scatter_add(
            e,
            Strided {
                data: t,
                base: |q| q * pl,
                p_stride: 1,
                j_stride: 0,
            },
            input.planes(),
            dx,
            rest,
        )
    }
}

/// Global average pooling: NCHW to `[batch x channels]`, the mean of each plane.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GlobalAvgPool;

impl GlobalAvgPool {
    /// Scratch for [`GlobalAvgPool::forward`].
    pub const fn forward_scratch(input: Image) -> usize {
        input.len()
    }

    /// `y[n * C + c] = mean of plane (n, c)`: local additions (a halving tree) and
    /// [`divide_by`] the plane size (one shift for a power of two, else a shift and one
    /// rescale).
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn forward<E: Engine + ?Sized>(
        e: &mut E,
        x: &[E::Elem],
        input: Image,
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (planes, hw) = (input.planes(), input.plane());
        assert!(
            x.len() == input.len() && y.len() == planes && hw > 0,
            "global avg pool forward: shape mismatch"
        );
        let xt = &mut scratch[..input.len()];
        transpose(x, planes, hw, xt);
        column_sums_in_place(e, xt, hw, planes, y)?;
        divide_by(e, y, hw)
    }

    /// Scratch for [`GlobalAvgPool::backward`].
    pub const fn backward_scratch(input: Image) -> usize {
        input.batch * input.channels
    }

    /// `dx` (overwritten): every element of plane `(n, c)` receives `dy[n * C + c] / (h w)`.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn backward<E: Engine + ?Sized>(
        e: &mut E,
        dy: &[E::Elem],
        input: Image,
        dx: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (planes, hw) = (input.planes(), input.plane());
        assert!(
            dy.len() == planes && dx.len() == input.len() && hw > 0,
            "global avg pool backward: shape mismatch"
        );
        let t = &mut scratch[..planes];
        t.copy_from_slice(dy);
        divide_by(e, t, hw)?;
        for (plane, &v) in dx.chunks_mut(hw).zip(t.iter()) {
            plane.fill(v);
        }
        Ok(())
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

    const SHAPES: [(usize, usize, Image); 4] = [
        (2, 2, Image::new(2, 3, 4, 6)),
        (3, 2, Image::new(1, 2, 7, 5)),
        (3, 1, Image::new(2, 1, 4, 4)),
        (2, 1, Image::new(1, 2, 3, 3)),
    ];

    /// Distinct values, spread at least `1/len` apart (so max pooling is differentiable
    /// for steps far below that), in (-1, 1).
    fn distinct(seed: u64, n: usize) -> Vec<f64> {
        let r = values(seed, n);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| r[a].partial_cmp(&r[b]).unwrap());
        let mut x = vec![0.0; n];
        for (rank, &i) in order.iter().enumerate() {
            x[i] = (rank as f64 + 0.5) / n as f64 * 1.8 - 0.9;
        }
        x
    }

    fn max_ref(k: usize, s: usize, x: &[f64], input: Image) -> Vec<f64> {
        let g = windows(input, k, s);
        let mut y = vec![f64::NEG_INFINITY; input.planes() * g.positions()];
        for q in 0..input.planes() {
            for p in 0..g.positions() {
                for j in 0..k * k {
                    let v = x[q * input.plane() + g.source(p, j).unwrap()];
                    let o = &mut y[q * g.positions() + p];
                    *o = o.max(v);
                }
            }
        }
        y
    }

    #[test]
    fn max_pool_forward_and_selection() {
        for (k, s, input) in SHAPES {
            let l = MaxPool2d::new(k, s);
            let x = distinct(5, input.len());
            let n = l.output(input).len();
            let (mut y, mut sel) = (vec![0.0; n], vec![0.0; l.selection_len(input)]);
            let mut sc = vec![0.0; l.forward_scratch(input)];
            l.forward(
                &mut Float::<f64>::new(),
                &x,
                input,
                &mut y,
                Some(&mut sel),
                &mut sc,
            )
            .unwrap();
            assert_eq!(y, max_ref(k, s, &x, input));
            assert!(sel.iter().all(|&b| b == 0.0 || b == 1.0));
            // The bits routed to the winners: one 1 per window, at an offset holding the
            // maximum.
            let onehot = one_hot(k, &sel, n);
            for i in 0..n {
                let col: Vec<f64> = (0..k * k).map(|j| onehot[j * n + i]).collect();
                assert_eq!(col.iter().sum::<f64>(), 1.0);
                assert!(col.iter().all(|&b| b == 0.0 || b == 1.0));
            }
        }
        // Ties: the lowest offset wins (no comparison bit set).
        let l = MaxPool2d::new(2, 2);
        let input = Image::new(1, 1, 2, 2);
        let mut sel = vec![0.0; 3];
        let mut y = vec![0.0; 1];
        let mut sc = vec![0.0; l.forward_scratch(input)];
        l.forward(
            &mut Float::<f64>::new(),
            &[0.5; 4],
            input,
            &mut y,
            Some(&mut sel),
            &mut sc,
        )
        .unwrap();
        assert_eq!(sel, [0.0; 3]);
        assert_eq!(one_hot(2, &sel, 1), [1.0, 0.0, 0.0, 0.0]);
    }

    /// The one-hot selection of a `k x k` pooling's comparison bits, `n` windows.
    fn one_hot(k: usize, bits: &[f64], n: usize) -> Vec<f64> {
        use crate::engine::generic::{route_tree, route_tree_scratch};
        let mut out = vec![0.0; k * k * n];
        let mut sc = vec![0.0; route_tree_scratch(k * k, n)];
        let ones = vec![1.0; n];
        route_tree(
            &mut Float::<f64>::new(),
            bits,
            k * k,
            &ones,
            &mut out,
            &mut sc,
        )
        .unwrap();
        out
    }

    /// Blocks of planes (a batch larger than `Plain`'s hint) give bit for bit what one
    /// pass over the whole batch gives, on raw ring elements (wrapped comparisons too).
    #[test]
    fn max_pool_blocks_equal_one_pass_bit_for_bit() {
        use crate::{Plain, Z64};
        for (k, s, input) in [
            (2, 2, Image::new(40, 3, 12, 12)),
            (3, 2, Image::new(30, 5, 13, 11)),
            (2, 1, Image::new(10, 8, 9, 10)),
        ] {
            let l = MaxPool2d::new(k, s);
            let g = windows(input, k, s);
            let mut e = Plain::with_frac_bits(13).unwrap();
            assert!(
                2 * (e.batch_hint() / g.positions()) < input.planes(),
                "blocked"
            );
            let mut st = 0x1234_5678_9ABC_DEF1u64 ^ input.len() as u64;
            let x: Vec<Z64> = (0..input.len())
                .map(|_| {
                    st ^= st << 13;
                    st ^= st >> 7;
                    st ^= st << 17;
                    Z64(st)
                })
                .collect();
            let n = l.output(input).len();
            let z = Z64::ZERO;
            let mut sc = vec![z; l.forward_scratch(input)];
            let (mut y1, mut s1) = (vec![z; n], vec![z; l.selection_len(input)]);
            MaxPool2d::forward_planes(
                &mut e,
                &g,
                &x,
                input.planes(),
                &mut y1,
                Some(&mut s1),
                &mut sc,
            )
            .unwrap();
            let (mut y2, mut s2) = (vec![z; n], vec![z; l.selection_len(input)]);
            l.forward(&mut e, &x, input, &mut y2, Some(&mut s2), &mut sc)
                .unwrap();
            assert_eq!((&y2, &s2), (&y1, &s1), "k{k} s{s} {input:?}");
            let mut y3 = vec![z; n];
            l.forward(&mut e, &x, input, &mut y3, None, &mut sc)
                .unwrap();
            assert_eq!(y3, y1);
        }
    }

    #[test]
    fn max_pool_gradient_matches_finite_differences() {
        for (i, (k, s, input)) in SHAPES.into_iter().enumerate() {
            let l = MaxPool2d::new(k, s);
            let n = l.output(input).len();
            // The checker draws x in (-1, 1); the layer sees `base + spread * x`, where
            // `base` is distinct values 1.8/len apart and `spread * |x|` < 0.1/len, so no
            // window has a tie within any finite-difference step (away from the kinks).
            let base = distinct(30 + i as u64, input.len());
            let spread = 0.1 / input.len() as f64;
            let shift = |x: &[f64]| -> Vec<f64> {
                x.iter().zip(&base).map(|(a, b)| b + spread * a).collect()
            };
            check(
                &Case::new(input.len(), 0, n, 40 + i as u64),
                |x, _, y| {
                    let mut sc = vec![0.0; l.forward_scratch(input)];
                    l.forward(&mut Float::<f64>::new(), &shift(x), input, y, None, &mut sc)
                        .unwrap();
                },
                |x, _, dy, dx, _| {
                    let mut e = Float::<f64>::new();
                    let mut sel = vec![0.0; l.selection_len(input)];
                    let mut y = vec![0.0; n];
                    let mut sc = vec![0.0; l.forward_scratch(input).max(l.backward_scratch(input))];
                    l.forward(&mut e, &shift(x), input, &mut y, Some(&mut sel), &mut sc)
                        .unwrap();
                    l.backward(&mut e, &sel, dy, input, dx, &mut sc).unwrap();
                    // Chain rule through the shift.
                    dx.iter_mut().for_each(|d| *d *= spread);
                },
            );
        }
    }

    #[test]
    fn avg_pool_gradient_matches_finite_differences() {
        for (i, (k, s, input)) in SHAPES.into_iter().enumerate() {
            let l = AvgPool2d::new(k, s);
            check(
                &Case::new(input.len(), 0, l.output(input).len(), 50 + i as u64),
                |x, _, y| {
                    let mut sc = vec![0.0; l.forward_scratch(input)];
                    l.forward(&mut Float::<f64>::new(), x, input, y, &mut sc)
                        .unwrap();
                },
                |_, _, dy, dx, _| {
                    let mut sc = vec![0.0; l.backward_scratch(input)];
                    l.backward(&mut Float::<f64>::new(), dy, input, dx, &mut sc)
                        .unwrap();
                },
            );
        }
    }

    #[test]
    fn global_avg_pool_gradient_matches_finite_differences() {
        for (i, (_, _, input)) in SHAPES.into_iter().enumerate() {
            check(
                &Case::new(input.len(), 0, input.planes(), 60 + i as u64),
                |x, _, y| {
                    let mut sc = vec![0.0; GlobalAvgPool::forward_scratch(input)];
                    GlobalAvgPool::forward(&mut Float::<f64>::new(), x, input, y, &mut sc).unwrap();
                    // The mean, directly.
                    for (q, v) in y.iter().enumerate() {
                        let m: f64 = x[q * input.plane()..(q + 1) * input.plane()]
                            .iter()
                            .sum::<f64>()
                            / input.plane() as f64;
                        assert!((v - m).abs() < 1e-12);
                    }
                },
                |_, _, dy, dx, _| {
                    let mut sc = vec![0.0; GlobalAvgPool::backward_scratch(input)];
                    GlobalAvgPool::backward(&mut Float::<f64>::new(), dy, input, dx, &mut sc)
                        .unwrap();
                },
            );
        }
    }

    struct Pools(usize, usize, Image);

    impl Harness for Pools {
        fn run<E: Engine>(&self, e: &mut E, ins: &[Vec<E::Elem>]) -> Vec<Vec<E::Elem>> {
            let (k, s, input) = (self.0, self.1, self.2);
            let (x, dy, dyg) = (&ins[0], &ins[1], &ins[2]);
            let z = E::Elem::default();
            let (mp, ap) = (MaxPool2d::new(k, s), AvgPool2d::new(k, s));
            let n = mp.output(input).len();
            let big = mp.forward_scratch(input).max(mp.backward_scratch(input)) + input.len();
            let mut sc = vec![z; big];
            let (mut ym, mut sel, mut dxm) = (
                vec![z; n],
                vec![z; mp.selection_len(input)],
                vec![z; x.len()],
            );
            mp.forward(e, x, input, &mut ym, Some(&mut sel), &mut sc)
                .unwrap();
            mp.backward(e, &sel, dy, input, &mut dxm, &mut sc).unwrap();
            let (mut ya, mut dxa) = (vec![z; n], vec![z; x.len()]);
            ap.forward(e, x, input, &mut ya, &mut sc).unwrap();
            ap.backward(e, dy, input, &mut dxa, &mut sc).unwrap();
            let (mut yg, mut dxg) = (vec![z; input.planes()], vec![z; x.len()]);
            GlobalAvgPool::forward(e, x, input, &mut yg, &mut sc).unwrap();
            GlobalAvgPool::backward(e, dyg, input, &mut dxg, &mut sc).unwrap();
            vec![ym, dxm, ya, dxa, yg, dxg]
        }
    }

    /// Max pooling on Plain is exact on the encoded inputs (comparisons and selects only):
    /// within the encoding error, half an ulp. Average pooling: the encoding error plus
    /// the encoded `1/k^2` (relative `k^2 2^-(f+1)`) plus one truncation, and `k^2` window
    /// contributions in `dx`: `(k^2 + 2)` ulps. Global: [`divide_by`]'s two ulps plus the
    /// relative `2^-f`, and the encoding error: 4 ulps.
    #[test]
    fn plain_matches_float() {
        for (i, (k, s, input)) in SHAPES.into_iter().enumerate() {
            let n = MaxPool2d::new(k, s).output(input).len();
            let ins = vec![
                distinct(70 + i as u64, input.len()),
                values(80 + i as u64, n),
                values(90 + i as u64, input.planes()),
            ];
            for f in [16u32, 20] {
                let ulp = crate::fixed::pow2(-(f as i32));
                let kk = (k * k) as f64;
                let half = 0.5 * ulp;
                let avg = (kk + 2.0) * ulp;
                let overlap = (k as f64 / s as f64).ceil().powi(2);
                compare_engines(
                    &Pools(k, s, input),
                    f,
                    &ins,
                    &[
                        half,
                        overlap * half,
                        avg,
                        overlap * avg,
                        4.0 * ulp,
                        4.0 * ulp,
                    ],
                );
            }
        }
    }
}
