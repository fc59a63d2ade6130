//! 2-D convolution over NCHW images: an unfolding, then one matrix product for the whole batch.
//!
//! The input batch is unfolded into the matrix `cols^T` of `in_channels * kernel * kernel`
//! rows (index `c * kernel^2 + ki * kernel + kj`) and `batch * oh * ow` columns, one per
//! output position, zero in the padding; written offset-major, each window row of each
//! offset is a run of consecutive elements (one copy at stride 1). Then
//! `out^T = W cols^T` is **one** engine matrix product for the whole batch (a host GEMM
//! plugged into the engine sees one large product, and a two-party engine pays one round),
//! followed by one rescale; each row of the result is one output channel, copied to NCHW
//! plane by plane, and the bias added.
//!
//! Backward: `dY^T` (`out_channels x batch*oh*ow`) is the output gradient by plane copies;
//! `dW = dY^T cols` (with the row-major unfolding `cols`) and `dcols^T = W^T dY^T`, one
//! product each; `db` is a sum of `dY^T`'s columns, and `dx` folds `dcols^T` back (col2im)
//! with one engine addition per window row and offset. Unfolding, reordering and folding
//! are local copies and additions, free on every engine.

use super::{transpose, Image};
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

    /// The window columns `ox` whose offset-`kj` source column lies inside the plane, as a
    /// range `lo..hi` (empty when none does), and that source column for `ox = lo`.
    #[inline(always)]
    fn valid_columns(&self, kj: usize) -> (usize, usize, usize) {
        // ix = ox * s + kj - pad must lie in 0..w.
        let lo = self.pad.saturating_sub(kj).div_ceil(self.s);
        let hi = (self.w + self.pad)
            .saturating_sub(kj)
            .div_ceil(self.s)
            .min(self.ow);
        let lo = lo.min(hi);
        (lo, hi, (lo * self.s + kj).saturating_sub(self.pad))
    }

    /// The source row of window row `oy` at kernel row `ki`, or `None` in the padding.
    #[inline(always)]
    fn source_row(&self, oy: usize, ki: usize) -> Option<usize> {
        (oy * self.s + ki)
            .checked_sub(self.pad)
            .filter(|&y| y < self.h)
    }

    /// `dst = src` for the short runs of unfolding (kernel rows, window rows): lengths up
    /// to 16 are copied by value, which compiles to a few moves, where `copy_from_slice`
    /// calls `memmove` (a 5-element kernel row cost more in the call than in the copy).
    #[inline(always)]
    fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
        macro_rules! by_value {
            ($($n:literal)*) => {
                match dst.len() {
                    $($n => {
                        let d: &mut [T; $n] = dst.try_into().expect("length matched");
                        *d = *<&[T; $n]>::try_from(src).expect("equal lengths");
                    })*
                    _ => dst.copy_from_slice(src),
                }
            };
        }
        by_value!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
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
                            let iy = self.source_row(oy, ki);
                            match (iy, x0) {
                                (Some(y), Some(x0)) => Self::copy_run(
                                    row,
                                    &plane[y * self.w + x0..y * self.w + x0 + k],
                                ),
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
            } else if p_stride == 1 {
                // Offset-major: for each offset, each window row is `ow` consecutive
                // outputs, read from one source row (a plain copy at stride 1).
                for ki in 0..k {
                    for kj in 0..k {
                        let (lo, hi, ix0) = self.valid_columns(kj);
                        let jb = b + (ki * k + kj) * j_stride;
                        for oy in 0..self.oh {
                            let row = &mut out[jb + oy * self.ow..jb + (oy + 1) * self.ow];
                            let Some(iy) = self.source_row(oy, ki) else {
                                row.fill(T::default());
                                continue;
                            };
                            row[..lo].fill(T::default());
                            row[hi..].fill(T::default());
                            if lo == hi {
                                continue;
                            }
                            let src = &plane[iy * self.w + ix0..];
                            let mid = &mut row[lo..hi];
                            if self.s == 1 {
                                Self::copy_run(mid, &src[..hi - lo]);
                            } else {
                                for (d, v) in mid.iter_mut().zip(src.iter().step_by(self.s)) {
                                    *d = *v;
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
    /// dropped (`dx` is overwritten). Engine additions only: at stride 1 with
    /// `p_stride == 1`, each window row of each offset is one addition of `ow` consecutive
    /// elements into `dx`; otherwise the offsets are split into groups in which no two
    /// windows share a position (offsets collide only when their rows and their columns
    /// differ by multiples of the stride), and each group is placed into `img` and added
    /// with one engine addition of the whole image: one pass for non-overlapping windows
    /// (pooling with stride = kernel), `ceil(k/s)^2` in general. `img` holds `dx.len()`
    /// elements.
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
        dx.fill(E::Elem::default());
        let (k, s) = (self.k, self.s);
        if s == 1 && p_stride == 1 {
            for q in 0..planes {
                let b = base(q);
                let dq = &mut dx[q * hw..(q + 1) * hw];
                for ki in 0..k {
                    for kj in 0..k {
                        let (lo, hi, ix0) = self.valid_columns(kj);
                        if lo == hi {
                            continue;
                        }
                        let jb = b + (ki * k + kj) * j_stride;
                        for oy in 0..self.oh {
                            let Some(iy) = self.source_row(oy, ki) else {
                                continue;
                            };
                            let at = iy * self.w + ix0;
                            let from = jb + oy * self.ow;
                            e.add_assign(&mut dq[at..at + hi - lo], &src[from + lo..from + hi])?;
                        }
                    }
                }
            }
            return Ok(());
        }
        let img = &mut img[..dx.len()];
        // Group g holds the offsets whose (ki / s, kj / s) is g: one offset per residue
        // class (ki % s, kj % s), so no two of them reach the same position.
        let per = k.div_ceil(s);
        for gi in 0..per {
            for gj in 0..per {
                img.fill(E::Elem::default());
                for ki in gi * s..((gi + 1) * s).min(k) {
                    for kj in gj * s..((gj + 1) * s).min(k) {
                        let j = ki * k + kj;
                        let (lo, hi, ix0) = self.valid_columns(kj);
                        if lo == hi {
                            continue;
                        }
                        for q in 0..planes {
                            let b = base(q) + j * j_stride;
                            let dst = &mut img[q * hw..(q + 1) * hw];
                            for oy in 0..self.oh {
                                let Some(iy) = self.source_row(oy, ki) else {
                                    continue;
                                };
                                let row = &mut dst[iy * self.w + ix0..];
                                let from = b + oy * self.ow * p_stride;
                                for (t, ox) in (lo..hi).enumerate() {
                                    row[t * s] = src[from + ox * p_stride];
                                }
                            }
                        }
                    }
                }
                e.add_assign(dx, img)?;
            }
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

    /// Scratch for [`Conv2d::forward`]: the unfolded input, the product and one output
    /// image's bias.
    pub fn forward_scratch(&self, input: Image) -> usize {
        let (rows, o) = (self.rows(input), self.out_channels);
        rows * self.patch() + rows * o + self.output(input).plane() * o
    }

    /// `y = conv(x, w) + b` (`y` in NCHW, shape [`Conv2d::output`]): one matrix product
    /// `out_channels x patch` by `patch x (batch*oh*ow)`, one rescale.
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
        let (cols, rest) = scratch.split_at_mut(patch * rows);
        let (prod, rest) = rest.split_at_mut(o * rows);
        let bias = &mut rest[..pl * o];
        self.unfold_t(x, input, cols);
        e.matmul(
            w,
            cols,
            MatDims {
                m: o,
                k: patch,
                n: rows,
            },
            prod,
        )?;
        e.rescale(prod)?;
        // prod[oc * rows + n * P + p] -> y[(n * O + oc) * P + p]: copies of whole planes.
        if pl > 0 {
            for (oc, row) in prod.chunks(rows).enumerate() {
                for (n, plane) in row.chunks(pl).enumerate() {
                    y[(n * o + oc) * pl..(n * o + oc + 1) * pl].copy_from_slice(plane);
                }
            }
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

    /// Where plane `q` of the input starts in the transposed unfolding (see
    /// [`Conv2d::unfold_t`]).
    fn t_base(&self, input: Image) -> impl Fn(usize) -> usize {
        let g = self.windows(input.height, input.width);
        let (c_in, kk, pl, rows) = (
            self.in_channels,
            g.offsets(),
            g.positions(),
            self.rows(input),
        );
        move |q| (q % c_in) * kk * rows + (q / c_in) * pl
    }

    /// The transposed unfolding, `patch x rows`:
    /// `cols[(c * k^2 + j) * rows + n * P + p] = x[n][c][window p, offset j]`. Each window
    /// row of each offset is a run of consecutive outputs (one copy at stride 1).
    fn unfold_t<T: Copy + Default>(&self, x: &[T], input: Image, cols: &mut [T]) {
        let g = self.windows(input.height, input.width);
        g.gather(
            x,
            input.planes(),
            cols,
            self.t_base(input),
            1,
            self.rows(input),
        );
    }

    /// Scratch for [`Conv2d::backward`]: the output gradient as `out_channels x rows`, the
    /// unfolded input (reused for its gradient), `W^T` and one input-sized image.
    pub fn backward_scratch(&self, input: Image) -> usize {
        let (rows, o) = (self.rows(input), self.out_channels);
        rows * o + rows * self.patch() + self.weights() + input.len()
    }

    /// From `dy` (NCHW, the output's shape): `dw = dY^T cols`, `db = sum of dY's rows`
    /// (both overwritten) and, when asked, `dx` (overwritten) by `dcols^T = W^T dY^T` and
    /// col2im. Two matrix products (three with `dx`), one rescale each.
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
        self.backward_with(e, x, w, dy, input, dx, dw, db, scratch, true)
    }

    /// [`Conv2d::backward`] with `dw` left at twice the fractional bits (not rescaled), so
    /// that the weight gradients of parts of a batch, summed and rescaled once, are bit for
    /// bit those of the whole batch (see [`super::Dense::backward_unscaled`]).
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// As [`Conv2d::forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward_unscaled<E: Engine + ?Sized>(
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
        self.backward_with(e, x, w, dy, input, dx, dw, db, scratch, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_with<E: Engine + ?Sized>(
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
        rescale_dw: bool,
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
        let (dyt, rest) = scratch.split_at_mut(o * rows);
        let (cols, rest) = rest.split_at_mut(rows * patch);
        let (wt, rest) = rest.split_at_mut(patch * o);
        let img = &mut rest[..input.len()];
        // dyt[oc * rows + n * P + p] = dy[(n * O + oc) * P + p]: copies of whole planes.
        if pl > 0 {
            for (oc, row) in dyt.chunks_mut(rows).enumerate() {
                for (n, plane) in row.chunks_mut(pl).enumerate() {
                    plane.copy_from_slice(&dy[(n * o + oc) * pl..(n * o + oc + 1) * pl]);
                }
            }
        }
        self.im2col(x, input, cols);
        e.matmul(
            dyt,
            cols,
            MatDims {
                m: o,
                k: rows,
                n: patch,
            },
            dw,
        )?;
        if rescale_dw {
            e.rescale(dw)?;
        }
        if let Some(dx) = dx {
            assert_eq!(dx.len(), input.len(), "conv2d backward: dx shape mismatch");
            transpose(w, o, patch, wt);
            e.matmul(
                wt,
                dyt,
                MatDims {
                    m: patch,
                    k: o,
                    n: rows,
                },
                cols,
            )?;
            e.rescale(cols)?;
            let g = self.windows(input.height, input.width);
            g.scatter_add(
                e,
                cols,
                input.planes(),
                self.t_base(input),
                1,
                rows,
                dx,
                img,
            )?;
        }
        row_sums_in_place(e, dyt, o, rows, db)
    }
}

/// `out[r] = sum over columns of x[r * cols + c]` by a halving tree within each row
/// (`ceil(log2 cols)` levels of engine additions). `x` is used as scratch.
fn row_sums_in_place<E: Engine + ?Sized>(
    e: &mut E,
    x: &mut [E::Elem],
    rows: usize,
    cols: usize,
    out: &mut [E::Elem],
) -> Result<(), E::Error> {
    assert!(
        x.len() == rows * cols && out.len() == rows,
        "row_sums_in_place: shape mismatch"
    );
    if cols == 0 {
        out.fill(E::Elem::default());
        return Ok(());
    }
    for (row, o) in x.chunks_mut(cols).zip(out.iter_mut()) {
        let mut cnt = cols;
        while cnt > 1 {
            let h = cnt / 2;
            let (a, b) = row.split_at_mut(h);
            e.add_assign(a, &b[..h])?;
            if cnt % 2 == 1 {
                row[h] = row[2 * h];
            }
            cnt = h + cnt % 2;
        }
        *o = row[0];
    }
    Ok(())
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

    /// Random ring elements (all 64 bits), so wrapping and rounding are exercised too.
    fn ring(seed: u64, n: usize) -> Vec<crate::Z64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                crate::Z64(s)
            })
            .collect()
    }

    /// Shapes for the bit-for-bit checks: padding, strides, overlapping and
    /// non-overlapping windows, kernels larger than the stride by more than one.
    const WINDOW_SHAPES: [(usize, usize, usize, usize, usize); 9] = [
        (5, 7, 3, 1, 1),
        (6, 6, 2, 2, 0),
        (4, 5, 3, 2, 1),
        (3, 3, 3, 1, 2),
        (12, 12, 5, 1, 0),
        (7, 9, 3, 3, 0),
        (9, 8, 5, 2, 2),
        (8, 8, 4, 3, 1),
        (1, 1, 1, 1, 0),
    ];

    /// The definition: `out[base(q) + p * ps + j * js] = x[q][source(p, j)]`.
    fn gather_reference(
        g: &Windows,
        x: &[crate::Z64],
        planes: usize,
        out: &mut [crate::Z64],
        base: impl Fn(usize) -> usize,
        ps: usize,
        js: usize,
    ) {
        let hw = g.h * g.w;
        for q in 0..planes {
            for p in 0..g.positions() {
                for j in 0..g.offsets() {
                    out[base(q) + p * ps + j * js] =
                        g.source(p, j).map_or(crate::Z64::ZERO, |i| x[q * hw + i]);
                }
            }
        }
    }

    /// The definition of the adjoint, one ring addition at a time.
    fn scatter_reference(
        g: &Windows,
        src: &[crate::Z64],
        planes: usize,
        base: impl Fn(usize) -> usize,
        ps: usize,
        js: usize,
        dx: &mut [crate::Z64],
    ) {
        let hw = g.h * g.w;
        dx.fill(crate::Z64::ZERO);
        for q in 0..planes {
            for p in 0..g.positions() {
                for j in 0..g.offsets() {
                    if let Some(i) = g.source(p, j) {
                        dx[q * hw + i] += src[base(q) + p * ps + j * js];
                    }
                }
            }
        }
    }

    #[test]
    fn gather_and_scatter_match_their_definitions_bit_for_bit() {
        for (t, &(h, w, k, st, pad)) in WINDOW_SHAPES.iter().enumerate() {
            let g = Windows::new(h, w, k, st, pad);
            let (planes, pl, kk) = (3, g.positions(), g.offsets());
            let x = ring(t as u64 + 1, planes * h * w);
            // Three layouts: unfolded rows (j_stride 1), offset-major (p_stride 1), and
            // a strided one for the general loop; the same windows shared by all offsets
            // (j_stride 0) in the scatter only.
            let layouts: [(usize, usize, usize); 3] = [
                (kk, 1, planes * pl * kk),
                (1, planes * pl, planes * pl * kk),
                (2 * kk, 2, 2 * planes * pl * kk),
            ];
            for (ps, js, len) in layouts {
                let stride_q = if js == 1 {
                    pl * kk
                } else if ps == 1 {
                    pl
                } else {
                    pl * 2 * kk
                };
                let base = |q: usize| q * stride_q;
                let mut want = vec![crate::Z64(7); len];
                let mut got = want.clone();
                gather_reference(&g, &x, planes, &mut want, base, ps, js);
                g.gather(&x, planes, &mut got, base, ps, js);
                assert_eq!(got, want, "gather {h}x{w} k{k} s{st} p{pad} ps{ps} js{js}");
                let src = ring(100 + t as u64, len);
                let mut want = vec![crate::Z64(3); x.len()];
                scatter_reference(&g, &src, planes, base, ps, js, &mut want);
                let mut got = vec![crate::Z64(5); x.len()];
                let mut img = vec![crate::Z64(9); x.len()];
                let mut e = crate::Plain::with_frac_bits(13).unwrap();
                g.scatter_add(&mut e, &src, planes, base, ps, js, &mut got, &mut img)
                    .unwrap();
                assert_eq!(got, want, "scatter {h}x{w} k{k} s{st} p{pad} ps{ps} js{js}");
            }
            // Every offset reading the same value (average pooling's backward).
            let src = ring(200 + t as u64, planes * pl);
            let mut want = vec![crate::Z64::ZERO; x.len()];
            scatter_reference(&g, &src, planes, |q| q * pl, 1, 0, &mut want);
            let (mut got, mut img) = (vec![crate::Z64(1); x.len()], vec![crate::Z64(1); x.len()]);
            let mut e = crate::Plain::with_frac_bits(13).unwrap();
            g.scatter_add(&mut e, &src, planes, |q| q * pl, 1, 0, &mut got, &mut img)
                .unwrap();
            assert_eq!(got, want, "shared scatter {h}x{w} k{k} s{st} p{pad}");
        }
    }

    /// The previous formulation (row-major unfolding, `cols W^T`, `dY W` and col2im), kept
    /// as the reference the current one must equal bit for bit on `Plain`.
    fn previous(
        l: &Conv2d,
        e: &mut crate::Plain,
        x: &[crate::Z64],
        w: &[crate::Z64],
        b: &[crate::Z64],
        dy: &[crate::Z64],
        input: Image,
    ) -> [Vec<crate::Z64>; 4] {
        use crate::Z64;
        let out = l.output(input);
        let (rows, patch, o, pl) = (l.rows(input), l.patch(), l.out_channels, out.plane());
        let mut cols = vec![Z64::ZERO; rows * patch];
        l.im2col(x, input, &mut cols);
        let mut wt = vec![Z64::ZERO; patch * o];
        transpose(w, o, patch, &mut wt);
        let mut prod = vec![Z64::ZERO; rows * o];
        let d = MatDims {
            m: rows,
            k: patch,
            n: o,
        };
        e.matmul(&cols, &wt, d, &mut prod).unwrap();
        e.rescale(&mut prod).unwrap();
        let mut y = vec![Z64::ZERO; out.len()];
        for (pn, yn) in prod.chunks(pl * o).zip(y.chunks_mut(pl * o)) {
            transpose(pn, pl, o, yn);
        }
        for img in y.chunks_mut(o * pl) {
            for (oc, v) in img.chunks_mut(pl).enumerate() {
                v.iter_mut().for_each(|v| *v += b[oc]);
            }
        }
        let mut dyt = vec![Z64::ZERO; rows * o];
        for (dn, tn) in dy.chunks(pl * o).zip(dyt.chunks_mut(pl * o)) {
            transpose(dn, o, pl, tn);
        }
        let mut dyr = vec![Z64::ZERO; rows * o];
        transpose(&dyt, rows, o, &mut dyr);
        let mut dw = vec![Z64::ZERO; o * patch];
        e.matmul(
            &dyr,
            &cols,
            MatDims {
                m: o,
                k: rows,
                n: patch,
            },
            &mut dw,
        )
        .unwrap();
        e.rescale(&mut dw).unwrap();
        let mut dcols = vec![Z64::ZERO; rows * patch];
        e.matmul(
            &dyt,
            w,
            MatDims {
                m: rows,
                k: o,
                n: patch,
            },
            &mut dcols,
        )
        .unwrap();
        e.rescale(&mut dcols).unwrap();
        let g = l.windows(input.height, input.width);
        let (c_in, kk) = (l.in_channels, g.offsets());
        let mut dx = vec![Z64::ZERO; input.len()];
        scatter_reference(
            &g,
            &dcols,
            input.planes(),
            |q| (q / c_in) * pl * patch + (q % c_in) * kk,
            patch,
            1,
            &mut dx,
        );
        let mut db = vec![Z64::ZERO; o];
        for r in dyt.chunks(o) {
            db.iter_mut().zip(r).for_each(|(a, &v)| *a += v);
        }
        [y, dx, dw, db]
    }

    #[test]
    fn plain_equals_the_previous_formulation_bit_for_bit() {
        let shapes = [
            (Conv2d::new(1, 16, 5, 1, 0), Image::new(3, 1, 12, 12)),
            (Conv2d::new(16, 16, 5, 1, 0), Image::new(2, 16, 12, 12)),
            (Conv2d::new(2, 3, 3, 1, 1), Image::new(2, 2, 5, 4)),
            (Conv2d::new(3, 2, 3, 2, 0), Image::new(2, 3, 7, 6)),
            (Conv2d::new(1, 4, 2, 2, 1), Image::new(1, 1, 5, 5)),
            (Conv2d::new(4, 5, 3, 2, 1), Image::new(3, 4, 9, 8)),
            (Conv2d::new(3, 8, 1, 2, 0), Image::new(2, 3, 6, 6)),
        ];
        for (t, (l, input)) in shapes.into_iter().enumerate() {
            let seed = 10 * t as u64;
            let out = l.output(input);
            let (x, w, b, dy) = (
                ring(seed + 1, input.len()),
                ring(seed + 2, l.weights()),
                ring(seed + 3, l.out_channels),
                ring(seed + 4, out.len()),
            );
            let mut e = crate::Plain::with_frac_bits(13).unwrap();
            let want = previous(&l, &mut e, &x, &w, &b, &dy, input);
            let z = crate::Z64::ZERO;
            let mut s = vec![z; l.forward_scratch(input).max(l.backward_scratch(input))];
            let mut y = vec![z; out.len()];
            l.forward(&mut e, &x, &w, &b, input, &mut y, &mut s)
                .unwrap();
            let (mut dx, mut dw, mut db) = (vec![z; x.len()], vec![z; w.len()], vec![z; b.len()]);
            l.backward(
                &mut e,
                &x,
                &w,
                &dy,
                input,
                Some(&mut dx),
                &mut dw,
                &mut db,
                &mut s,
            )
            .unwrap();
            for (i, (g, wv)) in [y, dx, dw, db].iter().zip(&want).enumerate() {
                assert_eq!(g, wv, "{l:?} {input:?}: output {i}");
            }
            // Without dx, the parameter gradients are the same.
            let (mut dw2, mut db2) = (vec![z; w.len()], vec![z; b.len()]);
            l.backward(&mut e, &x, &w, &dy, input, None, &mut dw2, &mut db2, &mut s)
                .unwrap();
            assert_eq!((&dw2, &db2), (&want[2], &want[3]));
        }
    }

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
