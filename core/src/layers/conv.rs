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
//!
//! The two products that read the unfolded input, `W cols^T` and `dY^T cols`, go through
//! the engine's [`Engine::conv_forward_product`] and [`Engine::conv_weight_product`],
//! which are exactly the unfolding and [`Engine::matmul`] above unless an engine overrides
//! them: the two-party engine does, to mask the input image instead of its unfolding
//! (a convolution triple, `ringnn-host`'s `mpc::protocols::conv_product`).

use super::windows::{Strided, Windows};
use super::{transpose, Grads, Image, Params};
use crate::engine::{ConvShape, ConvUnfold, MatDims};
use crate::Engine;

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

    /// Output positions of the whole batch, the columns of the transposed unfolding (rows
    /// of [`Conv2d::im2col`]): `batch * oh * ow`.
    ///
    /// # Panics
    /// As [`Conv2d::output_size`].
    pub fn rows(&self, input: Image) -> usize {
        self.output(input).plane() * input.batch
    }

    /// The public geometry of this layer on `input`, as the engine's convolution products
    /// take it.
    ///
    /// # Panics
    /// If `input.channels != in_channels`, or as [`Conv2d::output_size`].
    pub fn shape(&self, input: Image) -> ConvShape {
        assert_eq!(input.channels, self.in_channels, "conv2d: input channels");
        let _ = self.windows(input.height, input.width);
        ConvShape {
            batch: input.batch,
            channels: input.channels,
            height: input.height,
            width: input.width,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            out_channels: self.out_channels,
        }
    }

    /// The layer and input shape of `shape` (its inverse).
    pub fn from_shape(shape: ConvShape) -> (Conv2d, Image) {
        (
            Conv2d::new(
                shape.channels,
                shape.out_channels,
                shape.kernel,
                shape.stride,
                shape.padding,
            ),
            Image::new(shape.batch, shape.channels, shape.height, shape.width),
        )
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
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        params: Params<'_, E::Elem>,
        input: Image,
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        self.forward_with(e, None, x, params, input, y, scratch)
    }

    /// [`Conv2d::forward`] in training: the product goes through
    /// [`Engine::conv_forward_keeping`] under `slot` (the layer's name, unique within the
    /// network), so that [`Conv2d::backward_kept`] with the same slot, `x` and `w` can
    /// reuse what a two-party engine opened here. A plaintext engine's results are those
    /// of [`Conv2d::forward`], bit for bit.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// As [`Conv2d::forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward_keeping<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        slot: usize,
        x: &[E::Elem],
        params: Params<'_, E::Elem>,
        input: Image,
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        self.forward_with(e, Some(slot), x, params, input, y, scratch)
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_with<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        slot: Option<usize>,
        x: &[E::Elem],
        params: Params<'_, E::Elem>,
        input: Image,
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let Params { w, b } = params;
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
        match slot {
            Some(slot) => e.conv_forward_keeping(slot, &Bound(*self, input), x, w, prod, cols)?,
            None => e.conv_forward_product(&Bound(*self, input), x, w, prod, cols)?,
        }
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

    /// The row-major unfolding, `rows x patch` ([`Conv2d::rows`], [`Conv2d::patch`]):
    /// `cols[(n * P + p) * patch + c * k^2 + j] = x[n][c][window p, offset j]`, zero in the
    /// padding. Linear in `x` (a copy), so the unfolding of a sharing is a sharing of the
    /// unfolding.
    ///
    /// # Panics
    /// If `input.channels != in_channels`, or `x` or `cols` has the wrong length.
    pub fn im2col<T: Copy + Default>(&self, x: &[T], input: Image, cols: &mut [T]) {
        assert!(
            input.channels == self.in_channels
                && x.len() == input.len()
                && cols.len() == self.rows(input) * self.patch(),
            "conv2d im2col: shape mismatch"
        );
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
    /// `cols[(c * k^2 + j) * rows + n * P + p] = x[n][c][window p, offset j]`, zero in the
    /// padding. Each window row of each offset is a run of consecutive outputs (one copy
    /// at stride 1). Linear in `x`, as [`Conv2d::im2col`], whose transpose it is.
    ///
    /// # Panics
    /// If `input.channels != in_channels`, or `x` or `cols` has the wrong length.
    pub fn unfold_t<T: Copy + Default>(&self, x: &[T], input: Image, cols: &mut [T]) {
        assert!(
            input.channels == self.in_channels
                && x.len() == input.len()
                && cols.len() == self.rows(input) * self.patch(),
            "conv2d unfold: shape mismatch"
        );
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

    /// From `g.dy` (NCHW, the output's shape): `g.dw = dY^T cols`, `g.db = sum of dY's rows`
    /// (both overwritten) and, when asked, `g.dx` (overwritten) by `dcols^T = W^T dY^T` and
    /// col2im (at twice the fractional bits, rescaled once after). Two matrix products
    /// (three with `dx`), one rescale each.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// As [`Conv2d::forward`].
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        input: Image,
        g: Grads<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        self.backward_with::<true, E>(e, None, x, w, input, g, scratch)
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
    pub fn backward_unscaled<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        input: Image,
        g: Grads<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        self.backward_with::<false, E>(e, None, x, w, input, g, scratch)
    }

    /// [`Conv2d::backward`] (or, with `unscaled`, [`Conv2d::backward_unscaled`]) after
    /// [`Conv2d::forward_keeping`] of the same `slot`, `x` and `w`: both products through
    /// [`Engine::conv_backward_products`]. A plaintext engine's results are those of
    /// [`Conv2d::backward`], bit for bit. Scratch: [`Conv2d::backward_scratch`].
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// As [`Conv2d::forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward_kept<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        slot: usize,
        x: &[E::Elem],
        w: &[E::Elem],
        input: Image,
        g: Grads<'_, E::Elem>,
        scratch: &mut [E::Elem],
        unscaled: bool,
    ) -> Result<(), E::Error> {
        if unscaled {
            self.backward_with::<false, E>(e, Some(slot), x, w, input, g, scratch)
        } else {
            self.backward_with::<true, E>(e, Some(slot), x, w, input, g, scratch)
        }
    }

    /// The two backward variants: `RESCALE_DW` tells which.
    #[allow(clippy::too_many_arguments)]
    fn backward_with<const RESCALE_DW: bool, E: Engine + ?Sized>(
        &self,
        e: &mut E,
        slot: Option<usize>,
        x: &[E::Elem],
        w: &[E::Elem],
        input: Image,
        g: Grads<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let Grads { dy, dx, dw, db } = g;
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
        let bound = Bound(*self, input);
        if let Some(slot) = slot {
            // Both products at once (one opening on two parties), then the rescales.
            let want = dx.is_some();
            e.conv_backward_products(slot, &bound, x, w, dyt, dw, want, cols, wt)?;
            if RESCALE_DW {
                e.rescale(dw)?;
            }
        } else {
            e.conv_weight_product(&bound, dyt, x, dw, cols)?;
            if RESCALE_DW {
                e.rescale(dw)?;
            }
        }
        if let Some(dx) = dx {
            assert_eq!(dx.len(), input.len(), "conv2d backward: dx shape mismatch");
            if slot.is_none() {
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
            }
            // col2im at twice the fractional bits, then one rescale of the image: the
            // unfolded gradient is `patch / stride^2` times larger than `dx` (25 times in
            // LeNet's second convolution), and a two-party engine's rescale is a
            // truncation with a message per element. One rounding of each sum, not one per
            // term.
            let g = self.windows(input.height, input.width);
            g.scatter_add(
                e,
                Strided {
                    data: cols,
                    base: self.t_base(input),
                    p_stride: 1,
                    j_stride: rows,
                },
                input.planes(),
                dx,
                img,
            )?;
            e.rescale(dx)?;
        }
        row_sums_in_place(e, dyt, o, rows, db)
    }
}

/// A layer bound to its input shape: what the engine's convolution products take.
struct Bound(Conv2d, Image);

impl<T: Copy + Default> ConvUnfold<T> for Bound {
    fn shape(&self) -> ConvShape {
        self.0.shape(self.1)
    }

    fn unfold_t(&self, x: &[T], cols: &mut [T]) {
        self.0.unfold_t(x, self.1, cols);
    }

    fn im2col(&self, x: &[T], cols: &mut [T]) {
        self.0.im2col(x, self.1, cols);
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

    use crate::layers::gradcheck::{check, values, Case};
    use crate::layers::testutil::{compare_engines, ring, Harness};
    use crate::layers::windows::tests::scatter_reference;
    use crate::Float;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

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
        // col2im at 2f, one rescale after (since the rescale of the unfolded gradient
        // before col2im was dropped: one rounding per sum, not per term).
        e.rescale(&mut dx).unwrap();
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
            l.forward(&mut e, &x, Params { w: &w, b: &b }, input, &mut y, &mut s)
                .unwrap();
            let (mut dx, mut dw, mut db) = (vec![z; x.len()], vec![z; w.len()], vec![z; b.len()]);
            l.backward(
                &mut e,
                &x,
                &w,
                input,
                Grads {
                    dy: &dy,
                    dx: Some(&mut dx),
                    dw: &mut dw,
                    db: &mut db,
                },
                &mut s,
            )
            .unwrap();
            for (i, (g, wv)) in [y, dx, dw, db].iter().zip(&want).enumerate() {
                assert_eq!(g, wv, "{l:?} {input:?}: output {i}");
            }
            // Without dx, the parameter gradients are the same.
            let (mut dw2, mut db2) = (vec![z; w.len()], vec![z; b.len()]);
            l.backward(
                &mut e,
                &x,
                &w,
                input,
                Grads {
                    dy: &dy,
                    dx: None,
                    dw: &mut dw2,
                    db: &mut db2,
                },
                &mut s,
            )
            .unwrap();
            assert_eq!((&dw2, &db2), (&want[2], &want[3]));
            // The training path (forward_keeping, backward_kept) gives the same, with and
            // without dx; unscaled, the weight gradients of `backward_unscaled`.
            for with_dx in [true, false] {
                let mut y3 = vec![z; out.len()];
                let p = Params { w: &w, b: &b };
                l.forward_keeping(&mut e, 7, &x, p, input, &mut y3, &mut s)
                    .unwrap();
                assert_eq!(y3, want[0], "{l:?} {input:?}: kept forward");
                for unscaled in [false, true] {
                    let (mut dx3, mut dw3, mut db3) =
                        (vec![z; x.len()], vec![z; w.len()], vec![z; b.len()]);
                    let g = Grads {
                        dy: &dy,
                        dx: with_dx.then_some(&mut dx3[..]),
                        dw: &mut dw3,
                        db: &mut db3,
                    };
                    l.backward_kept(&mut e, 7, &x, &w, input, g, &mut s, unscaled)
                        .unwrap();
                    let mut dw_want = vec![z; w.len()];
                    let g = Grads {
                        dy: &dy,
                        dx: None,
                        dw: &mut dw_want,
                        db: &mut db2,
                    };
                    if unscaled {
                        l.backward_unscaled(&mut e, &x, &w, input, g, &mut s)
                            .unwrap();
                    } else {
                        l.backward(&mut e, &x, &w, input, g, &mut s).unwrap();
                    }
                    assert_eq!((&dw3, &db3), (&dw_want, &want[3]), "{l:?} {input:?}");
                    if with_dx {
                        assert_eq!(dx3, want[1], "{l:?} {input:?}: kept dx");
                    }
                }
            }
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
            l.forward(
                &mut Float::<f64>::new(),
                &x,
                Params { w: &w, b: &b },
                input,
                &mut y,
                &mut s,
            )
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
                    l.forward(
                        &mut Float::<f64>::new(),
                        x,
                        Params { w, b },
                        input,
                        y,
                        &mut s,
                    )
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
                        input,
                        Grads {
                            dy,
                            dx: Some(dx),
                            dw,
                            db,
                        },
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
            l.forward(e, x, Params { w, b }, input, &mut y, &mut s)
                .unwrap();
            let (mut dx, mut dw, mut db) = (vec![z; x.len()], vec![z; w.len()], vec![z; b.len()]);
            l.backward(
                e,
                x,
                w,
                input,
                Grads {
                    dy,
                    dx: Some(&mut dx),
                    dw: &mut dw,
                    db: &mut db,
                },
                &mut s,
            )
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
