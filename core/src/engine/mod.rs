//! The `Engine` trait: approximate real arithmetic, batched over slices.
//!
//! Model and approximation code is written once against this trait and runs on
//! [`Float`](crate::Float) (the reference), [`Plain`](crate::Plain) (fixed point in Z_2^64)
//! and, in `ringnn-host`, on each party's additive shares. Every method works on whole
//! slices so that one round of a two-party protocol serves a whole batch.
//!
//! # Scales
//! Elements of a fixed-point engine carry `f` fractional bits ([`Engine::frac_bits`]).
//! The product of two such elements ([`Engine::mul`], [`Engine::mul_public`] with a
//! [`Engine::public`] constant) carries `2f` bits and must be brought back with an explicit
//! [`Engine::rescale`]: every truncation is a named call. Integer-scaled values (comparison
//! bits, [`Engine::public_int`] constants) multiply without a rescale. A float engine reports
//! `frac_bits() == 0`, so the same code is exact arithmetic there.
//!
//! # Primitives and composites
//! Required methods are the primitives a two-party engine must implement (local linear
//! operations, multiplication, truncation, sign bit, select). Provided methods (relu, max,
//! clamp, max-of-lines, polynomials, reciprocal) are built from them; an engine may override
//! one with something faster, but must return exactly what the provided method would
//! (the generic versions stay callable as free functions in [`generic`] so tests can check).
//!
//! # Exact functions
//! Only plaintext engines can evaluate e^x, tanh and the sigmoid exactly (the references of
//! the study). They implement the sub-trait [`ExactEngine`] and hand it out through
//! [`Engine::exact`]; a two-party engine keeps the default `None`, so it has nothing to
//! implement and no error to report for them. Generic code that meets an `exact`
//! approximation asks [`Engine::exact`] (see [`crate::approx`]).
//!
//! # Panics
//! Slices passed together must have the lengths each method states; a mismatch is a bug in
//! the caller and panics. No element value can make a method panic.

pub mod generic;
pub mod recip;

use crate::approx::lines::Lines;
use core::fmt;

/// A function that a plaintext engine can evaluate exactly (by decoding, applying the
/// float function and encoding): what [`ExactEngine`] offers. A two-party engine cannot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Exact {
    /// e^x
    Exp,
    /// tanh(x)
    Tanh,
    /// 1 / (1 + e^-x)
    Sigmoid,
}

impl Exact {
    /// The function in `f64`.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Exact::Exp => libm::exp(x),
            Exact::Tanh => libm::tanh(x),
            Exact::Sigmoid => 1.0 / (1.0 + libm::exp(-x)),
        }
    }
}

/// Shape of a matrix product `out[m x n] = a[m x k] * b[k x n]`, all row-major.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MatDims {
    /// Rows of `a` and `out`.
    pub m: usize,
    /// Columns of `a`, rows of `b`.
    pub k: usize,
    /// Columns of `b` and `out`.
    pub n: usize,
}

/// The public geometry of a convolution over a batch of NCHW images: what an engine (and a
/// two-party engine's dealer) needs to know of a [`Conv2d`](crate::layers::Conv2d) applied
/// to an input shape. Built by [`Conv2d::shape`](crate::layers::Conv2d::shape), which
/// checks that the kernel fits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Output channels.
    pub out_channels: usize,
}

impl ConvShape {
    /// Elements of the input batch: `batch * channels * height * width`.
    pub const fn image_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Elements of one unfolded patch: `channels * kernel^2`.
    pub const fn patch(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Output height and width: `(h + 2p - k) / s + 1` each.
    ///
    /// # Panics
    /// If the stride is 0 or the padded input is smaller than the kernel (a shape
    /// [`Conv2d::shape`](crate::layers::Conv2d::shape) does not build).
    pub const fn output_size(&self) -> (usize, usize) {
        let p = 2 * self.padding;
        (
            (self.height + p - self.kernel) / self.stride + 1,
            (self.width + p - self.kernel) / self.stride + 1,
        )
    }

    /// Output positions of the whole batch, the columns of the transposed unfolding:
    /// `batch * oh * ow`.
    ///
    /// # Panics
    /// As [`ConvShape::output_size`].
    pub const fn rows(&self) -> usize {
        let (oh, ow) = self.output_size();
        self.batch * oh * ow
    }
}

/// A convolution bound to its input shape, as the engine's convolution products see it:
/// its [`ConvShape`] and its two unfoldings of an image (local copies, linear in the
/// image, zero in the padding). [`Conv2d`](crate::layers::Conv2d) provides it; the trait
/// keeps this module free of the layers.
pub trait ConvUnfold<T> {
    /// The geometry.
    fn shape(&self) -> ConvShape;
    /// The transposed unfolding of `x` (`image_len` elements) into `cols`, `patch x rows`.
    fn unfold_t(&self, x: &[T], cols: &mut [T]);
    /// The row-major unfolding of `x` into `cols`, `rows x patch`.
    fn im2col(&self, x: &[T], cols: &mut [T]);
}

/// A matrix-product routine an engine can be given in place of its portable loop (the host
/// supplies blocked, multi-threaded ones). It must compute exactly `out = a * b` in the
/// element arithmetic (wrapping for Z_2^64).
pub type MatmulFn<T> = fn(a: &[T], b: &[T], dims: MatDims, out: &mut [T]);

/// Counts of the events that make a fixed-point run drift from its real-number model,
/// since the engine was made (or its counters reset). Each is what a collapsed run is
/// diagnosed by (docs/results.md, "Collapses, diagnosed").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Products whose integer value left `[-2^63, 2^63)`: the ring result is not the real
    /// one. Matrix products are not checked.
    pub wrapped: u64,
    /// Public constants and exact-function results that saturated at the safe range when
    /// encoded (e.g. exact e^x of a large logit).
    pub saturated: u64,
    /// Softmax rows whose sum was `<= 0` (every e^x of the row 0, or the sum wrapped),
    /// made uniform instead of divided by.
    pub empty_rows: u64,
    /// Reciprocal inputs outside its domain `(0, 2^62)` (raw value): the result is finite
    /// but meaningless.
    pub recip_out_of_range: u64,
    /// ReLU, max-of-lines and clamp inputs outside the range of the two-party engine's
    /// one-round gates, `|x| < 2^(W-2)` raw for `W = `[`fss_width`]`(f)`, and differences
    /// compared by [`Engine::is_negative_diff`] outside `[-2^(W-1), 2^(W-1))`: there the
    /// two-party comparisons (`fss`'s gates; `a2b`'s ReLU and compared differences) read
    /// the sign of `x mod 2^W` and may differ from this result. Not a fault of this run;
    /// a run with 0 here computes what those gates compute.
    pub beyond_fss_width: u64,
}

/// The bit width `W` of the two-party engine's one-round ReLU, spline and max
/// ([`Engine::is_negative_diff`]) gates at `f` fractional bits: `min(64, 67 - f)`. The
/// ReLU and spline inputs must satisfy `|x| < 2^(W-2)` raw
/// (`2^(65-f)`, twice the largest truncated product that did not wrap, `2^(63-f)`, plus
/// room for a bias of the same size), which leaves the gates' comparisons of `x` against
/// knots up to `2^(W-2)` inside the signed `W`-bit range; a compared difference of two
/// such values is inside `[-2^(W-1), 2^(W-1))`. [`Health::beyond_fss_width`] counts the
/// inputs and differences that are not.
pub const fn fss_width(frac_bits: u32) -> u32 {
    if frac_bits <= 3 {
        64
    } else if frac_bits >= 63 {
        4
    } else {
        67 - frac_bits
    }
}

/// Whether the raw value `x` is inside the range of the gates of width [`fss_width`]`(f)`:
/// `|x| < 2^(W-2)`.
#[inline]
pub const fn within_fss_width(x: i64, frac_bits: u32) -> bool {
    let w = fss_width(frac_bits);
    if w >= 64 {
        true
    } else {
        let lim = 1i64 << (w - 2);
        -lim <= x && x < lim
    }
}

impl Health {
    /// The sum of two counts (a forked engine's counts taken back).
    #[must_use]
    pub fn plus(self, o: Health) -> Health {
        Health {
            wrapped: self.wrapped + o.wrapped,
            saturated: self.saturated + o.saturated,
            empty_rows: self.empty_rows + o.empty_rows,
            recip_out_of_range: self.recip_out_of_range + o.recip_out_of_range,
            beyond_fss_width: self.beyond_fss_width + o.beyond_fss_width,
        }
    }
}

/// Approximate real arithmetic over slices. See the [module documentation](self).
pub trait Engine {
    /// One element: a float, a fixed-point ring element, or one party's share of one.
    type Elem: Copy + Default + fmt::Debug;
    /// A public constant, encoded for this engine.
    type Public: Copy + fmt::Debug;
    /// Failure of an operation (`Infallible` for the plaintext engines).
    type Error: fmt::Debug;

    /// Fractional bits of the elements; 0 for float engines.
    fn frac_bits(&self) -> u32;
    /// Encodes the public real `c` at the element scale.
    ///
    /// Constants are the kernel's own coefficients (|c| well below 2^20); a fixed-point
    /// engine rounds to nearest and saturates at the safe range.
    fn public(&self, c: f64) -> Self::Public;
    /// Encodes the public integer `k` at integer scale (no fractional bits): multiplying by
    /// it needs no rescale.
    fn public_int(&self, k: i64) -> Self::Public;
    /// What went wrong in the arithmetic so far, where the engine can see it: `None` for
    /// an engine that cannot look at values (a two-party engine holds shares; counting a
    /// data-dependent event would open it). See [`Health`].
    fn health(&self) -> Option<Health> {
        None
    }
    /// Number of products that wrapped or constants that saturated so far (0 when the
    /// engine cannot tell): `wrapped + saturated` of [`Engine::health`].
    fn overflow_count(&self) -> u64 {
        self.health().map_or(0, |h| h.wrapped + h.saturated)
    }
    /// Called by the generic composites with the 0/1 flags (at integer scale) of the
    /// rows that had no mass (`sum <= 0`) and were made uniform; an engine that can read
    /// values counts them in [`Health::empty_rows`]. The default ignores them.
    fn note_empty_rows(&self, flags: &[Self::Elem]) {
        let _ = flags;
    }
    /// How many elements a composite should hand to one call when it may split its work
    /// (softmax splits by rows). Plaintext engines prefer cache-sized pieces; a two-party
    /// engine keeps the default, so a whole batch costs one set of rounds.
    fn batch_hint(&self) -> usize {
        usize::MAX
    }

    /// `x[i] += y[i]`. Lengths equal.
    fn add_assign(&mut self, x: &mut [Self::Elem], y: &[Self::Elem]) -> Result<(), Self::Error>;
    /// `x[i] -= y[i]`. Lengths equal.
    fn sub_assign(&mut self, x: &mut [Self::Elem], y: &[Self::Elem]) -> Result<(), Self::Error>;
    /// `x[i] += c`.
    fn add_public(&mut self, x: &mut [Self::Elem], c: Self::Public) -> Result<(), Self::Error>;
    /// `x[i] *= c`, without rescale.
    fn mul_public(&mut self, x: &mut [Self::Elem], c: Self::Public) -> Result<(), Self::Error>;
    /// `out[i] = a[i] * b[i]`, without rescale. Lengths equal.
    fn mul(
        &mut self,
        a: &[Self::Elem],
        b: &[Self::Elem],
        out: &mut [Self::Elem],
    ) -> Result<(), Self::Error>;
    /// `out = a * b` (row-major, shapes in `dims`), without rescale.
    fn matmul(
        &mut self,
        a: &[Self::Elem],
        b: &[Self::Elem],
        dims: MatDims,
        out: &mut [Self::Elem],
    ) -> Result<(), Self::Error>;
    /// Divides by `2^bits`: `Plain` rounds to the nearest value (ties toward plus
    /// infinity, [`Z64::shr_round`](crate::Z64::shr_round)); a two-party engine rounds
    /// without bias within one ulp of that; float is exact.
    fn shift_right(&mut self, x: &mut [Self::Elem], bits: u32) -> Result<(), Self::Error>;
    /// Divides `x` by `2^bits` as [`Engine::shift_right`] does and writes
    /// `(c x) / 2^scaled_bits` of the same (unshifted) `x` into `scaled`, for a public
    /// `c`: the provided version multiplies and shifts twice; a two-party engine derives
    /// both from one opening of the masked `x`. The SGD step's new velocity and its
    /// `lr v` ([`crate::optim`]). `c x` must stay inside the safe range `[-2^62, 2^62)`.
    ///
    /// # Panics
    /// If the lengths differ.
    fn shift_right_and_scaled(
        &mut self,
        x: &mut [Self::Elem],
        bits: u32,
        c: Self::Public,
        scaled: &mut [Self::Elem],
        scaled_bits: u32,
    ) -> Result<(), Self::Error> {
        generic::shift_right_and_scaled(self, x, bits, c, scaled, scaled_bits)
    }
    /// Divides chunk `i` of `x` (`shifts.len()` chunks of `n` elements) by
    /// `2^shifts[i]`, as [`Engine::shift_right`] does. The provided version shifts chunk by
    /// chunk; a two-party engine truncates every chunk in one round.
    ///
    /// # Panics
    /// If `x.len() != n * shifts.len()`.
    fn shift_right_chunks(
        &mut self,
        x: &mut [Self::Elem],
        n: usize,
        shifts: &[u32],
    ) -> Result<(), Self::Error> {
        assert_eq!(x.len(), n * shifts.len(), "shift_right_chunks: length");
        if n == 0 {
            return Ok(());
        }
        for (c, &s) in x.chunks_mut(n).zip(shifts) {
            self.shift_right(c, s)?;
        }
        Ok(())
    }
    /// `out[i] = 1` (integer scale) if `x[i] < 0`, else `0`. Lengths equal.
    fn is_negative(&mut self, x: &[Self::Elem], out: &mut [Self::Elem]) -> Result<(), Self::Error>;
    /// [`Engine::is_negative`] of values the caller knows to lie in `[-2^(bits-1),
    /// 2^(bits-1))`, which a two-party engine may compare at that width (the reciprocal's
    /// pieces: [`recip::RecipPieces::width`]). Outside that range the result is the sign of
    /// `x mod 2^bits` there, while `Plain` gives the sign of `x`. The default is
    /// [`Engine::is_negative`].
    fn is_negative_within(
        &mut self,
        x: &[Self::Elem],
        out: &mut [Self::Elem],
        bits: u32,
    ) -> Result<(), Self::Error> {
        let _ = bits;
        self.is_negative(x, out)
    }
    /// [`Engine::is_negative`] of the differences `a - b` of two values a layer compares
    /// (the maximum of two, max pooling, arg-max). A two-party engine may compare them at
    /// the reduced width [`fss_width`]`(f)`, exact for `-2^(W-1) <= x < 2^(W-1)`; `Plain`
    /// counts the differences outside that range in [`Health::beyond_fss_width`]. The
    /// default is [`Engine::is_negative`].
    fn is_negative_diff(
        &mut self,
        x: &[Self::Elem],
        out: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        self.is_negative(x, out)
    }
    /// `out[i] = if bits[i] == 1 { a[i] } else { b[i] }`, for bits produced by
    /// [`Engine::is_negative`] or derived from them (0 or 1 at integer scale). Lengths equal.
    fn select(
        &mut self,
        bits: &[Self::Elem],
        a: &[Self::Elem],
        b: &[Self::Elem],
        out: &mut [Self::Elem],
    ) -> Result<(), Self::Error>;
    /// This engine as an [`ExactEngine`], if it can evaluate [`Exact`] functions: plaintext
    /// engines return `Some(self)`; the default, `None`, is what a two-party engine keeps.
    #[allow(clippy::type_complexity)]
    fn exact(
        &mut self,
    ) -> Option<&mut dyn ExactEngine<Elem = Self::Elem, Public = Self::Public, Error = Self::Error>>
    {
        None
    }

    /// Brings a product back to `f` fractional bits (truncation by `f` bits).
    fn rescale(&mut self, x: &mut [Self::Elem]) -> Result<(), Self::Error> {
        let f = self.frac_bits();
        if f == 0 {
            return Ok(());
        }
        self.shift_right(x, f)
    }

    /// `x[i] *= c` for a public real `c`: integer constants multiply locally without a
    /// truncation (so `x * 1` is exact); others multiply and rescale.
    fn scale(&mut self, x: &mut [Self::Elem], c: f64) -> Result<(), Self::Error> {
        if libm::trunc(c) == c && libm::fabs(c) < 9.0e15 {
            let k = self.public_int(c as i64);
            self.mul_public(x, k)
        } else {
            let p = self.public(c);
            self.mul_public(x, p)?;
            self.rescale(x)
        }
    }

    /// `x[i] = c` for a public real `c`.
    fn fill(&mut self, x: &mut [Self::Elem], c: f64) -> Result<(), Self::Error> {
        x.fill(Self::Elem::default());
        let p = self.public(c);
        self.add_public(x, p)
    }

    /// A convolution's forward product, without rescale: `out = w * cols^T`, where `cols^T`
    /// is [`ConvUnfold::unfold_t`] of the image `x`, `w` is `out_channels x patch` and
    /// `out` is `out_channels x rows` ([`ConvShape`]).
    ///
    /// The provided version unfolds `x` into `cols` and calls [`Engine::matmul`]: what
    /// [`Conv2d::forward`](crate::layers::Conv2d::forward) always did, so a plaintext
    /// engine's results are unchanged. A two-party engine overrides it to mask the image,
    /// not its unfolding, which is about `k^2 / stride^2` times larger. Scratch: `cols`,
    /// `patch * rows` elements (left spent).
    ///
    /// # Panics
    /// If a length does not match the shape.
    fn conv_forward_product(
        &mut self,
        conv: &dyn ConvUnfold<Self::Elem>,
        x: &[Self::Elem],
        w: &[Self::Elem],
        out: &mut [Self::Elem],
        cols: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::conv_forward_product(self, conv, x, w, out, cols)
    }

    /// A convolution's weight-gradient product, without rescale: `dw = dyt * cols`, where
    /// `cols` is [`ConvUnfold::im2col`] of the image `x`, `dyt` is `out_channels x rows`
    /// and `dw` is `out_channels x patch`.
    ///
    /// The provided version unfolds `x` into `cols` and calls [`Engine::matmul`], what
    /// [`Conv2d::backward`](crate::layers::Conv2d::backward) always did; a two-party engine
    /// overrides it as [`Engine::conv_forward_product`]. Scratch: `cols`, `rows * patch`
    /// elements (left spent).
    ///
    /// # Panics
    /// If a length does not match the shape.
    fn conv_weight_product(
        &mut self,
        conv: &dyn ConvUnfold<Self::Elem>,
        dyt: &[Self::Elem],
        x: &[Self::Elem],
        dw: &mut [Self::Elem],
        cols: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::conv_weight_product(self, conv, dyt, x, dw, cols)
    }

    /// A dense layer's forward product in training, without rescale: `out = x * w`
    /// (`dims`: `x` is `m x k`, `w` is `k x n`), whose backward pass will call
    /// [`Engine::dense_backward_products`] with the same `slot`, `x` and `w`. The slot is
    /// the caller's name for the layer (unique within the network, e.g. its parameters'
    /// offset).
    ///
    /// The provided version is [`Engine::matmul`] and keeps nothing: a plaintext engine's
    /// results are those of [`Dense::forward`](crate::layers::Dense::forward). A
    /// two-party engine overrides it to keep the masked operands it opened, so that the
    /// backward pass reuses them instead of opening `x` and `w` again.
    ///
    /// # Panics
    /// If a length does not match `dims`.
    fn dense_forward_product(
        &mut self,
        slot: usize,
        x: &[Self::Elem],
        w: &[Self::Elem],
        dims: MatDims,
        out: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        let _ = slot;
        self.matmul(x, w, dims, out)
    }

    /// A dense layer's backward products, without rescale: `dw = x^T * dy` (`k x n`) and,
    /// when asked, `dx = dy * w^T` (`m x k`), for the `x` (`m x k`), `w` (`k x n`) and
    /// `dims` of the [`Engine::dense_forward_product`] of the same `slot`; `dy` is
    /// `m x n`. Scratch: `max(m k, k n)` elements (left spent).
    ///
    /// The provided version transposes into `scratch` and calls [`Engine::matmul`] twice,
    /// what [`Dense::backward`](crate::layers::Dense::backward) always did, so a
    /// plaintext engine's results are unchanged. A two-party engine overrides it to
    /// open only `dy` (masked) and compute both products from what the forward product
    /// opened.
    ///
    /// # Panics
    /// If a length does not match `dims`; a two-party engine also panics if `x` or `w` is
    /// not what the slot's forward product was given (a bug in the caller).
    #[allow(clippy::too_many_arguments)]
    fn dense_backward_products(
        &mut self,
        slot: usize,
        x: &[Self::Elem],
        w: &[Self::Elem],
        dy: &[Self::Elem],
        dims: MatDims,
        dw: &mut [Self::Elem],
        dx: Option<&mut [Self::Elem]>,
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        let _ = slot;
        generic::dense_backward_products(self, x, w, dy, dims, dw, dx, scratch)
    }

    /// A convolution's forward product in training: [`Engine::conv_forward_product`],
    /// whose backward pass will call [`Engine::conv_backward_products`] with the same
    /// `slot` (the caller's name for the layer), `x` and `w`.
    ///
    /// The provided version is [`Engine::conv_forward_product`] and keeps nothing. A
    /// two-party engine overrides it to keep the masked image and kernel it opened for
    /// the backward pass.
    ///
    /// # Panics
    /// If a length does not match the shape.
    fn conv_forward_keeping(
        &mut self,
        slot: usize,
        conv: &dyn ConvUnfold<Self::Elem>,
        x: &[Self::Elem],
        w: &[Self::Elem],
        out: &mut [Self::Elem],
        cols: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        let _ = slot;
        self.conv_forward_product(conv, x, w, out, cols)
    }

    /// A convolution's backward products, without rescale, after the
    /// [`Engine::conv_forward_keeping`] of the same `slot`, `x` (the image) and `w`
    /// (`out_channels x patch`): `dw = dyt * cols` with `cols` the row-major unfolding of
    /// `x` (`out_channels x patch`, as [`Engine::conv_weight_product`]) and, with `dx`,
    /// the input gradient's unfolded form `w^T * dyt` (`patch x rows`) written into `cols`.
    /// Scratch: `cols`, `patch * rows` (left spent without `dx`), and `wt`,
    /// `patch * out_channels` (left spent).
    ///
    /// The provided version is [`Engine::conv_weight_product`], then `w` transposed into
    /// `wt` and [`Engine::matmul`]: the products [`Conv2d::backward`](crate::layers::Conv2d::backward)
    /// always computed, so a plaintext engine's results are unchanged. A two-party engine
    /// overrides it to open only `dyt` (masked) and compute both products from what the
    /// forward product opened.
    ///
    /// # Panics
    /// If a length does not match the shape; a two-party engine also panics if `x` or `w`
    /// is not what the slot's forward product was given (a bug in the caller).
    #[allow(clippy::too_many_arguments)]
    fn conv_backward_products(
        &mut self,
        slot: usize,
        conv: &dyn ConvUnfold<Self::Elem>,
        x: &[Self::Elem],
        w: &[Self::Elem],
        dyt: &[Self::Elem],
        dw: &mut [Self::Elem],
        dx: bool,
        cols: &mut [Self::Elem],
        wt: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        let _ = slot;
        generic::conv_backward_products(self, conv, x, w, dyt, dw, dx, cols, wt)
    }

    /// `x[i] = max(x[i], 0)`. Scratch: `2 * x.len()`.
    fn relu(
        &mut self,
        x: &mut [Self::Elem],
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::relu(self, x, scratch)
    }

    /// [`Engine::relu`], and, where the engine gets it without another round, the
    /// derivative bit the backward pass needs: `grad[i] = [x[i] > 0]` (0 or 1 at integer
    /// scale), exactly the bit [`Relu::backward`](crate::layers::Relu::backward)
    /// recomputes (`[-x < 0]` on the ring). Returns `true` when `grad` was written,
    /// `false` when it was left untouched (the default, which is [`Engine::relu`]).
    /// Lengths equal. Scratch: `3 * x.len()`.
    fn relu_keeping_grad(
        &mut self,
        x: &mut [Self::Elem],
        grad: &mut [Self::Elem],
        scratch: &mut [Self::Elem],
    ) -> Result<bool, Self::Error> {
        let _ = grad;
        self.relu(x, scratch)?;
        Ok(false)
    }

    /// `left[i] = max(left[i], right[i])`, and `bits[i] = [left[i] < right[i]]` (1 where
    /// `right` wins, 0 or 1 at integer scale; ties go to `left`), comparing the
    /// differences `left - right` as [`Engine::is_negative_diff`] does. Lengths equal.
    /// The default compares, then selects ([`generic::max_pair`]); a two-party engine may
    /// get both from one gate on the difference. Scratch: `left.len()`.
    fn max_pair(
        &mut self,
        left: &mut [Self::Elem],
        right: &[Self::Elem],
        bits: &mut [Self::Elem],
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::max_pair(self, left, right, bits, scratch)
    }

    /// `a[i] = max(a[i], b[i])` ([`Engine::max_pair`], its bits dropped). Scratch:
    /// `2 * a.len()`.
    fn max_assign(
        &mut self,
        a: &mut [Self::Elem],
        b: &[Self::Elem],
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::max_assign(self, a, b, scratch)
    }

    /// `x[i] = min(max(x[i], lo), hi)`, and `grad[i] = 1` where `lo < x[i] < hi`, else 0
    /// (the derivative), when asked. Scratch: `4 * x.len()`.
    fn clamp(
        &mut self,
        x: &mut [Self::Elem],
        lo: f64,
        hi: f64,
        grad: Option<&mut [Self::Elem]>,
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::clamp(self, x, lo, hi, grad, scratch)
    }

    /// `out[i] = max over lines l of (slope_l * x[i] + intercept_l)`, and `grad[i]` = the
    /// slope of the maximal line, when asked. Scratch: [`generic::max_of_lines_scratch`].
    fn max_of_lines(
        &mut self,
        lines: &Lines,
        x: &[Self::Elem],
        out: &mut [Self::Elem],
        grad: Option<&mut [Self::Elem]>,
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::max_of_lines(self, lines, x, out, grad, scratch)
    }

    /// Maximum over `kk` candidates per position by a halving tree (the pairs compared at
    /// each level, and the odd last candidate carried up, are fixed, so every engine picks
    /// the same winner, ties going to the left). `v` holds `kk` rows of `n` candidates
    /// (row `i`: candidate `i` of every position); on return row 0 holds the maxima and the
    /// other rows are spent. With `bits` ([`generic::max_tree_bits`]`(kk) * n`), also the
    /// tree's comparison bits, level after level (a level of `h` comparisons: `h` rows of
    /// `n`, bit 1 where the right candidate of the pair won), from which
    /// [`generic::route_tree`] sends a gradient to each winner. Scratch:
    /// [`generic::max_tree_scratch`].
    fn max_tree(
        &mut self,
        v: &mut [Self::Elem],
        kk: usize,
        bits: Option<&mut [Self::Elem]>,
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::max_tree(self, v, kk, bits, scratch)
    }

    /// `out[i] = sum_j coeffs[j] * x[i]^j` by Horner's rule (one multiplication and one
    /// rescale per degree). Scratch: `x.len()`.
    fn polynomial(
        &mut self,
        coeffs: &[f64],
        x: &[Self::Elem],
        out: &mut [Self::Elem],
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::polynomial(self, coeffs, x, out, scratch)
    }

    /// Softmax's division, in place, of `rows` rows of `cols` values `v` (row-major) of an
    /// approximated e^x: clip at 0 when `clip`, then `v * (2^g / row sum) >> (f + g)` with
    /// `g = guard_bits`, and every value of a row whose sum is not positive `1 / cols`
    /// rounded (the uniform row softmax defines there). [`crate::softmax::softmax`] calls it once per piece of
    /// [`Engine::batch_hint`] elements; a plaintext engine fuses it row by row. Scratch:
    /// [`generic::normalize_rows_scratch`].
    fn normalize_rows(
        &mut self,
        v: &mut [Self::Elem],
        rows: usize,
        cols: usize,
        clip: bool,
        guard_bits: u32,
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::normalize_rows(self, v, rows, cols, clip, guard_bits, scratch)
    }

    /// `out[i] = `[`recip::RecipPieces::eval`]`(s[i])`, `2^(2f) / s` from 128 linear pieces
    /// for the reciprocal's normalised input `s` in `[2^(f-1), 2^f]` raw (and any `s` in
    /// `[0, 2^(f+1)]`, where the end pieces extend). Scratch:
    /// [`generic::reciprocal_pieces_scratch`].
    fn reciprocal_pieces(
        &mut self,
        s: &[Self::Elem],
        out: &mut [Self::Elem],
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::reciprocal_pieces(self, s, out, scratch)
    }

    /// `out[i] = 2^extra_bits / x[i]` for `x[i] > 0` in the safe range, at the element scale,
    /// and `0` for `x[i] <= 0`: range normalisation to `[1/2, 1)` by comparisons against
    /// powers of two, linear pieces and (for `f > 15`) Newton-Raphson. With `empty`, also
    /// `empty[i] = [x[i] <= 0]` (0 or 1 at integer scale), read off the first of those
    /// comparisons (an engine that counts inputs outside the domain then counts only those
    /// at or above `2^62`: the caller expects `x <= 0`). See [`generic::reciprocal`] for the
    /// method and the precision. Scratch: [`generic::reciprocal_scratch`].
    fn reciprocal(
        &mut self,
        x: &[Self::Elem],
        out: &mut [Self::Elem],
        empty: Option<&mut [Self::Elem]>,
        extra_bits: u32,
        scratch: &mut [Self::Elem],
    ) -> Result<(), Self::Error> {
        generic::reciprocal(self, x, out, empty, extra_bits, scratch)
    }
}

/// An engine that evaluates [`Exact`] functions: the plaintext engines. Generic code reaches
/// it through [`Engine::exact`]; code that holds a plaintext engine can call it directly.
pub trait ExactEngine: Engine {
    /// `x[i] = func(x[i])`, decoded, evaluated in `f64` and encoded again.
    fn apply_exact(&mut self, func: Exact, x: &mut [Self::Elem]) -> Result<(), Self::Error>;
}
