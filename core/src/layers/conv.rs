//! 2-D convolution over NCHW images: im2col, then one matrix product for the whole batch.
//!
//! The input batch is unfolded into the matrix `cols` of `(batch * oh * ow)` rows, one per
//! output position, and `in_channels * kernel * kernel` columns (index
//! `c * kernel^2 + ki * kernel + kj`), zero in the padding. Then
//! `out = cols * W^T` is **one** engine matrix product for the whole batch (a host GEMM
//! plugged into the engine sees one large product, and a two-party engine pays one round),
//! followed by one rescale; the result is reordered to NCHW and the bias added.
//!
//! Backward uses the same unfolding: `dW = dY^T * cols` and `dcols = dY * W`, one product
//! each, where `dY` is the output gradient as a `(batch * oh * ow) x out_channels` matrix;
//! `db` is a sum of `dY`'s rows and `dx` folds `dcols` back (col2im) with local additions.
//! Unfolding, reordering and folding are local copies and additions, free on every engine.

use super::{column_sums_in_place, transpose, Image};
use crate::engine::MatDims;
use crate::Engine;

/// Sliding square windows over planes of `h x w`: kernel `k`, stride `s`, zero padding
/// `pad` on every side. Shared by convolution and pooling.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Windows {
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub s: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Windows {
    /// # Panics
    /// If `k` or `s` is 0 or the padded plane is smaller than the kernel.
    pub fn new(h: usize, w: usize, k: usize, s: usize, pad: usize) -> Self {
        assert!(
            k > 0 && s > 0 && h + 2 * pad >= k && w + 2 * pad >= k,
            "windows: kernel {k}, stride {s}, padding {pad} do not fit {h} x {w}"
        );
        Windows {
            h,
            w,
            k,
            s,
            pad,
            oh: (h + 2 * pad - k) / s + 1,
            ow: (w + 2 * pad - k) / s + 1,
        }
    }

    /// Output positions per plane.
    pub fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Offsets per window.
    pub fn offsets(&self) -> usize {
        self.k * self.k
    }

    /// Index in the plane of offset `j = ki * k + kj` of window `p = oy * ow + ox`, or `None`
    /// in the padding. For a fixed `j`, distinct windows give distinct indices. (The
    /// definition; the loops use [`Windows::for_each_source`], tested against it.)
    #[cfg(test)]
    pub fn source(&self, p: usize, j: usize) -> Option<usize> {
        let (oy, ox) = (p / self.ow, p % self.ow);
        let (ki, kj) = (j / self.k, j % self.k);
        let iy = (oy * self.s + ki).checked_sub(self.pad)?;
        let ix = (ox * self.s + kj).checked_sub(self.pad)?;
        (iy < self.h && ix < self.w).then_some(iy * self.w + ix)
    }

    /// Calls `visit(p, j, i)` for every window `p` and offset `j` in order, with `i` the
    /// index in the plane or `None` in the padding: the same pairs as [`Windows::source`],
    /// found by nested loops instead of divisions (this runs once per element of every
    /// unfolded matrix).
    #[inline(always)]
    fn for_each_source(&self, mut visit: impl FnMut(usize, usize, Option<usize>)) {
        let k = self.k;
        for oy in 0..self.oh {
            for ox in 0..self.ow {
                let p = oy * self.ow + ox;
                for ki in 0..k {
                    let iy = (oy * self.s + ki)
                        .checked_sub(self.pad)
                        .filter(|&y| y < self.h);
                    for kj in 0..k {
                        let ix = (ox * self.s + kj)
                            .checked_sub(self.pad)
                            .filter(|&x| x < self.w);
                        let i = match (iy, ix) {
                            (Some(y), Some(x)) => Some(y * self.w + x),
                            _ => None,
                        };
                        visit(p, ki * k + kj, i);
                    }
                }
            }
        }
    }

    /// `out[base(q) + p * p_stride + j * j_stride] = x[q * h * w + source(p, j)]` (zero in
    /// the padding) for every plane `q < planes`, window `p` and offset `j`.
    pub fn gather<T: Copy + Default>(
        &self,
        x: &[T],
        planes: usize,
        out: &mut [T],
        base: impl Fn(usize) -> usize,
        p_stride: usize,
        j_stride: usize,
    ) {
        let hw = self.h * self.w;
        assert_eq!(x.len(), planes * hw, "windows: input shape mismatch");
        let k = self.k;
        for q in 0..planes {
            let plane = &x[q * hw..(q + 1) * hw];
            let b = base(q);
            if j_stride == 1 {
                // Unfolded rows: each kernel row is k consecutive outputs, a plain copy
                // when the window lies inside the plane.
                for oy in 0..self.oh {
                    for ox in 0..self.ow {
                        let dst = b + (oy * self.ow + ox) * p_stride;
                        let x0 = (ox * self.s)
                            .checked_sub(self.pad)
                            .filter(|&x| x + k <= self.w);
                        for ki in 0..k {
                            let row = &mut out[dst + ki * k..dst + (ki + 1) * k];
                            let iy = (oy * self.s + ki)
                                .checked_sub(self.pad)
                                .filter(|&y| y < self.h);
                            match (iy, x0) {
                                (Some(y), Some(x0)) => row
                                    .copy_from_slice(&plane[y * self.w + x0..y * self.w + x0 + k]),
                                (None, _) => row.fill(T::default()),
                                (Some(y), None) => {
                                    for (kj, r) in row.iter_mut().enumerate() {
                                        *r = (ox * self.s + kj)
                                            .checked_sub(self.pad)
                                            .filter(|&x| x < self.w)
                                            .map_or(T::default(), |x| plane[y * self.w + x]);
                                    }
                                }
                            }
                        }
                    }
                }
            } else {
                self.for_each_source(|p, j, i| {
                    out[b + p * p_stride + j * j_stride] = match i {
                        Some(i) => plane[i],
                        None => T::default(),
                    };
                });
            }
        }
    }

    /// The adjoint of [`Windows::gather`]: `dx = sum over (q, p, j) of
    /// src[base(q) + p * p_stride + j * j_stride]` placed at `(q, source(p, j))`, padding
    /// dropped. One engine addition of the whole image per offset `j` (within one offset no
    /// two windows share a position); `img` holds `dx.len()` elements.
    #[allow(clippy::too_many_arguments)]
    pub fn scatter_add<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        src: &[E::Elem],
        planes: usize,
        base: impl Fn(usize) -> usize,
        p_stride: usize,
        j_stride: usize,
        dx: &mut [E::Elem],
        img: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let hw = self.h * self.w;
        assert_eq!(dx.len(), planes * hw, "windows: gradient shape mismatch");
        let img = &mut img[..dx.len()];
        dx.fill(E::Elem::default());
        for j in 0..self.offsets() {
            img.fill(E::Elem::default());
            let (ki, kj) = (j / self.k, j % self.k);
            for q in 0..planes {
                let b = base(q);
                let dst = &mut img[q * hw..(q + 1) * hw];
                for oy in 0..self.oh {
                    let Some(iy) = (oy * self.s + ki)
                        .checked_sub(self.pad)
                        .filter(|&y| y < self.h)
                    else {
                        continue;
                    };
                    for ox in 0..self.ow {
                        let Some(ix) = (ox * self.s + kj)
                            .checked_sub(self.pad)
                            .filter(|&x| x < self.w)
                        else {
                            continue;
                        };
                        let p = oy * self.ow + ox;
                        dst[iy * self.w + ix] = src[b + p * p_stride + j * j_stride];
                    }
                }
            }
            e.add_assign(dx, img)?;
        }
        Ok(())
    }
}

/// A 2-D convolution with a square kernel. Weights are `out_channels x (in_channels *
/// kernel * kernel)` row-major (PyTorch's `[O][C][kh][kw]`), the bias has `out_channels`
/// entries. See the [module documentation](self).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride (the same in both directions).
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv2d {
    /// A layer of the given shape.
    pub const fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        }
    }

    /// Elements of one unfolded patch: `in_channels * kernel^2`.
    pub const fn patch(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    /// Number of weights: `out_channels * patch()`.
    pub const fn weights(&self) -> usize {
        self.out_channels * self.patch()
    }

    /// Output height and width for an `h x w` input: `(h + 2p - k) / s + 1` each.
    ///
    /// # Panics
    /// If the stride or kernel is 0 or the padded input is smaller than the kernel.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let g = self.windows(h, w);
        (g.oh, g.ow)
    }

    /// The output shape for `input`.
    ///
    /// # Panics
    /// As [`Conv2d::output_size`].
    pub fn output(&self, input: Image) -> Image {
        let (oh, ow) = self.output_size(input.height, input.width);
        Image::new(input.batch, self.out_channels, oh, ow)
    }

    fn windows(&self, h: usize, w: usize) -> Windows {
        Windows::new(h, w, self.kernel, self.stride, self.padding)
    }

    /// Output rows of the unfolded matrix: `batch * oh * ow`.
    fn rows(&self, input: Image) -> usize {
        self.output(input).plane() * input.batch
    }

    /// Scratch for [`Conv2d::forward`]: the unfolded input, `W^T`, the product and one
    /// output image's bias.
    pub fn forward_scratch(&self, input: Image) -> usize {
        let (rows, o) = (self.rows(input), self.out_channels);
        rows * self.patch() + self.patch() * o + rows * o + self.output(input).plane() * o
    }

    /// `y = conv(x, w) + b` (`y` in NCHW, shape [`Conv2d::output`]): one matrix product
    /// `(batch*oh*ow) x patch` by `patch x out_channels`, one rescale.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If `input.channels != in_channels`, a slice has the wrong length or the scratch is
    /// too short.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        b: &[E::Elem],
        input: Image,
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let out = self.output(input);
        let (rows, patch, o, pl) = (
            self.rows(input),
            self.patch(),
            self.out_channels,
            out.plane(),
        );
        assert!(
            input.channels == self.in_channels
                && x.len() == input.len()
                && w.len() == self.weights()
                && b.len() == o
                && y.len() == out.len(),
            "conv2d forward: shape mismatch"
        );
        let (cols, rest) = scratch.split_at_mut(rows * patch);
        let (wt, rest) = rest.split_at_mut(patch * o);
        let (prod, rest) = rest.split_at_mut(rows * o);
        let bias = &mut rest[..pl * o];
        self.im2col(x, input, cols);
        transpose(w, o, patch, wt);
        e.matmul(
            cols,
            wt,
            MatDims {
                m: rows,
                k: patch,
                n: o,
            },
            prod,
        )?;
        e.rescale(prod)?;
        // prod[(n * P + p) * O + oc] -> y[(n * O + oc) * P + p]: one transpose per image.
        for (pn, yn) in prod.chunks(pl * o).zip(y.chunks_mut(pl * o)) {
            transpose(pn, pl, o, yn);
        }
        for (oc, &bv) in b.iter().enumerate() {
            bias[oc * pl..(oc + 1) * pl].fill(bv);
        }
        for img in y.chunks_mut(o * pl) {
            e.add_assign(img, bias)?;
        }
        Ok(())
    }

    /// `cols[(n * P + p) * patch + c * k^2 + j] = x[n][c][window p, offset j]`.
    fn im2col<T: Copy + Default>(&self, x: &[T], input: Image, cols: &mut [T]) {
        let g = self.windows(input.height, input.width);
        let (c_in, kk, pl, patch) = (self.in_channels, g.offsets(), g.positions(), self.patch());
        g.gather(
            x,
            input.planes(),
            cols,
            |q| (q / c_in) * pl * patch + (q % c_in) * kk,
            patch,
            1,
        );
    }

    /// Scratch for [`Conv2d::backward`]: the output gradient in two orders, the unfolded
    /// input (reused for its gradient) and one input-sized image for the fold.
    pub fn backward_scratch(&self, input: Image) -> usize {
        let (rows, o) = (self.rows(input), self.out_channels);
        2 * rows * o + rows * self.patch() + input.len()
    }

    /// From `dy` (NCHW, the output's shape): `dw = dY^T cols`, `db = sum of dY's rows`
    /// (both overwritten) and, when asked, `dx` (overwritten) by `dcols = dY w` and col2im.
    /// Two matrix products (three with `dx`), one rescale each.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// As [`Conv2d::forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        dy: &[E::Elem],
        input: Image,
        dx: Option<&mut [E::Elem]>,
        dw: &mut [E::Elem],
        db: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let out = self.output(input);
        let (rows, patch, o, pl) = (
            self.rows(input),
            self.patch(),
            self.out_channels,
            out.plane(),
        );
        assert!(
            input.channels == self.in_channels
                && x.len() == input.len()
                && w.len() == self.weights()
                && dy.len() == out.len()
                && dw.len() == self.weights()
                && db.len() == o,
            "conv2d backward: shape mismatch"
        );
        let (dyt, rest) = scratch.split_at_mut(rows * o);
        let (dyr, rest) = rest.split_at_mut(rows * o);
        let (cols, rest) = rest.split_at_mut(rows * patch);
        let img = &mut rest[..input.len()];
        // dyt: rows x O (the forward product's layout), one transpose per image; dyr: the
        // transpose of all of it.
        for (dn, tn) in dy.chunks(pl * o).zip(dyt.chunks_mut(pl * o)) {
            transpose(dn, o, pl, tn);
        }
        transpose(dyt, rows, o, dyr);
        self.im2col(x, input, cols);
        e.matmul(
            dyr,
            cols,
            MatDims {
                m: o,
                k: rows,
                n: patch,
            },
            dw,
        )?;
        e.rescale(dw)?;
        if let Some(dx) = dx {
            assert_eq!(dx.len(), input.len(), "conv2d backward: dx shape mismatch");
            e.matmul(
                dyt,
                w,
                MatDims {
                    m: rows,
                    k: o,
                    n: patch,
                },
                cols,
            )?;
            e.rescale(cols)?;
            let g = self.windows(input.height, input.width);
            let (c_in, kk) = (self.in_channels, g.offsets());
            g.scatter_add(
                e,
                cols,
                input.planes(),
                |q| (q / c_in) * pl * patch + (q % c_in) * kk,
                patch,
                1,
                dx,
                img,
            )?;
        }
        column_sums_in_place(e, dyt, rows, o, db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_loops_visit_exactly_the_defined_sources() {
        for (h, w, k, st, pad) in [
            (5, 7, 3, 1, 1),
            (6, 6, 2, 2, 0),
            (4, 5, 3, 2, 1),
            (3, 3, 3, 1, 2),
        ] {
            let g = Windows::new(h, w, k, st, pad);
            let mut seen = std::vec::Vec::new();
            g.for_each_source(|p, j, i| seen.push((p, j, i)));
            let want: std::vec::Vec<_> = (0..g.positions())
                .flat_map(|p| (0..g.offsets()).map(move |j| (p, j)))
                .map(|(p, j)| (p, j, g.source(p, j)))
                .collect();
            assert_eq!(seen, want, "{h}x{w} k{k} s{st} p{pad}");
        }
    }
    use crate::layers::gradcheck::{check, values, Case};
    use crate::layers::testutil::{compare_engines, Harness};
    use crate::Float;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    const SHAPES: [(Conv2d, Image); 3] = [
        (Conv2d::new(2, 3, 3, 1, 1), Image::new(2, 2, 5, 4)),
        (Conv2d::new(3, 2, 3, 2, 0), Image::new(2, 3, 7, 6)),
        (Conv2d::new(1, 4, 2, 2, 1), Image::new(1, 1, 5, 5)),
    ];

    /// Direct convolution in f64, the definition.
    fn reference(l: &Conv2d, x: &[f64], w: &[f64], b: &[f64], input: Image) -> Vec<f64> {
        let out = l.output(input);
        let (k, s, pad) = (l.kernel as isize, l.stride as isize, l.padding as isize);
        let mut y = vec![0.0; out.len()];
        for n in 0..input.batch {
            for o in 0..l.out_channels {
                for oy in 0..out.height {
                    for ox in 0..out.width {
                        let mut acc = b[o];
                        for c in 0..l.in_channels {
                            for ki in 0..k {
                                for kj in 0..k {
                                    let iy = oy as isize * s + ki - pad;
                                    let ix = ox as isize * s + kj - pad;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= input.height as isize
                                        || ix >= input.width as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * input.channels + c) * input.height
                                        + iy as usize)
                                        * input.width
                                        + ix as usize;
                                    let wi = (o * l.in_channels + c) * (l.kernel * l.kernel)
                                        + (ki * k + kj) as usize;
                                    acc += x[xi] * w[wi];
                                }
                            }
                        }
                        y[((n * l.out_channels + o) * out.height + oy) * out.width + ox] = acc;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn forward_matches_direct_convolution() {
        for (l, input) in SHAPES {
            let x = values(1, input.len());
            let w = values(2, l.weights());
            let b = values(3, l.out_channels);
            let mut y = vec![0.0; l.output(input).len()];
            let mut s = vec![0.0; l.forward_scratch(input)];
            l.forward(&mut Float::<f64>::new(), &x, &w, &b, input, &mut y, &mut s)
                .unwrap();
            for (a, r) in y.iter().zip(reference(&l, &x, &w, &b, input)) {
                assert!((a - r).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (i, (l, input)) in SHAPES.into_iter().enumerate() {
            let out = l.output(input);
            let case = Case::new(
                input.len(),
                l.weights() + l.out_channels,
                out.len(),
                10 + i as u64,
            );
            check(
                &case,
                |x, p, y| {
                    let (w, b) = p.split_at(l.weights());
                    let mut s = vec![0.0; l.forward_scratch(input)];
                    l.forward(&mut Float::<f64>::new(), x, w, b, input, y, &mut s)
                        .unwrap();
                },
                |x, p, dy, dx, dp| {
                    let (w, _) = p.split_at(l.weights());
                    let (dw, db) = dp.split_at_mut(l.weights());
                    let mut s = vec![0.0; l.backward_scratch(input)];
                    l.backward(
                        &mut Float::<f64>::new(),
                        x,
                        w,
                        dy,
                        input,
                        Some(dx),
                        dw,
                        db,
                        &mut s,
                    )
                    .unwrap();
                },
            );
        }
    }

    struct Body(Conv2d, Image);

    impl Harness for Body {
        fn run<E: Engine>(&self, e: &mut E, ins: &[Vec<E::Elem>]) -> Vec<Vec<E::Elem>> {
            let (l, input) = (self.0, self.1);
            let (x, w, b, dy) = (&ins[0], &ins[1], &ins[2], &ins[3]);
            let z = E::Elem::default();
            let mut y = vec![z; l.output(input).len()];
            let mut s = vec![z; l.forward_scratch(input).max(l.backward_scratch(input))];
            l.forward(e, x, w, b, input, &mut y, &mut s).unwrap();
            let (mut dx, mut dw, mut db) = (vec![z; x.len()], vec![z; w.len()], vec![z; b.len()]);
            l.backward(e, x, w, dy, input, Some(&mut dx), &mut dw, &mut db, &mut s)
                .unwrap();
            vec![y, dx, dw, db]
        }
    }

    /// Each output element is a sum of at most `patch` (or `batch*oh*ow`) products of
    /// values in (-1, 1), each product truncated once after summation: the error is the
    /// encoding error of the inputs (half an ulp each, times the sum of |other factor|)
    /// plus one ulp. `4 * terms` ulps bounds it.
    #[test]
    fn plain_matches_float() {
        for (l, input) in SHAPES {
            let out = l.output(input);
            let ins = vec![
                values(21, input.len()),
                values(22, l.weights()),
                values(23, l.out_channels),
                values(24, out.len()),
            ];
            for f in [16u32, 20] {
                let ulp = crate::fixed::pow2(-(f as i32));
                let t_fwd = 4.0 * l.patch() as f64 * ulp;
                let t_dx = 4.0 * (l.out_channels * l.kernel * l.kernel) as f64 * ulp;
                let t_dw = 4.0 * (input.batch * out.plane()) as f64 * ulp;
                compare_engines(&Body(l, input), f, &ins, &[t_fwd, t_dx, t_dw, t_dw]);
            }
        }
    }
}
