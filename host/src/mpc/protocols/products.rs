//! The products of matrices and convolutions on shares: Beaver matrix triples, convolution
//! triples (the image is opened, never its unfolding) and the backward products that
//! reuse the forward's opened masked values. The rest of the protocols are in the
//! [parent module](super).

use super::Link;
use crate::mpc::channel::Channel;
use crate::mpc::dealer::{ConvProduct, Correlations};
use crate::mpc::wire::Tag;
use crate::mpc::MpcError;
use ringnn_core::engine::{ConvShape, ConvUnfold, MatDims, MatmulFn};
use ringnn_core::Z64;

/// Matrix product with a SecureML matrix triple: `[Z] = [X] [Y]`, exact in Z_2^64.
///
/// With `[A]` (`m x k`), `[B]` (`k x n`), `[C = A B]`, open `E = X - A` and `F = Y - B`;
/// then `X Y = E Y + A F + C`, which each party computes from its own shares of `Y`, `A`,
/// `C` and the public `E`, `F` (two local products, no party-specific term).
/// A convolution's products that read the unfolded input use [`conv_product`] instead,
/// which opens the image rather than its unfolding; its input gradient `W^T dY^T` is an
/// ordinary matrix product (neither factor is unfolded). A dense layer in training uses
/// [`matmul_keeping`] and [`dense_backward`].
///
/// # Security
/// `E` and `F` are masked by the uniform, fresh `A` and `B`.
///
/// # Communication
/// 1 round; `8 (m k + k n)` bytes sent per party (each input entry once, not once per
/// product term). Offline: `8 m n` bytes to party 1.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If a length does not match `dims`.
pub fn matmul<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[Z64],
    y: &[Z64],
    dims: MatDims,
    out: &mut [Z64],
    gemm: MatmulFn<Z64>,
) -> Result<(), MpcError> {
    matmul_keeping(link, corr, x, y, dims, out, gemm).map(drop)
}

/// This party's share of the mask `A = X - E` from its share of `X` and the public `E`:
/// `[X] - E` for party 0, `[X]` for party 1.
fn mask_share(p0: bool, x: &[Z64], e: &[Z64]) -> Vec<Z64> {
    if p0 {
        x.iter().zip(e).map(|(&v, &d)| v - d).collect()
    } else {
        x.to_vec()
    }
}

/// Opens `x - a` and `y - b` in one message: the public `(E, F)` of a product triple.
fn open_pair<C: Channel>(
    link: &mut Link<C>,
    tag: Tag,
    during: &'static str,
    (x, a): (&[Z64], &[Z64]),
    (y, b): (&[Z64], &[Z64]),
) -> Result<(Vec<Z64>, Vec<Z64>), MpcError> {
    let mut send = Vec::with_capacity(x.len() + y.len());
    send.extend(x.iter().zip(a).map(|(&v, &m)| (v - m).0));
    send.extend(y.iter().zip(b).map(|(&v, &m)| (v - m).0));
    let opened = link.open_add(tag, during, &send)?;
    let (e, f) = opened.split_at(x.len());
    Ok((
        e.iter().map(|&w| Z64(w)).collect(),
        f.iter().map(|&w| Z64(w)).collect(),
    ))
}

/// Opens `G = dY - D`, a backward pass's one opening.
fn open_difference<C: Channel>(
    link: &mut Link<C>,
    tag: Tag,
    during: &'static str,
    dy: &[Z64],
    d: &[Z64],
) -> Result<Vec<Z64>, MpcError> {
    let send: Vec<u64> = dy.iter().zip(d).map(|(&v, &m)| (v - m).0).collect();
    Ok(link
        .open_add(tag, during, &send)?
        .into_iter()
        .map(Z64)
        .collect())
}

/// How many dealer requests back the forward product's (number `request`) was: what the
/// backward masks' request names.
fn requests_back<R: Correlations + ?Sized>(
    corr: &R,
    request: u64,
    what: &'static str,
) -> Result<usize, MpcError> {
    let back = corr.consumed() - request;
    usize::try_from(back).map_err(|_| MpcError::Dealer {
        what,
        reason: format!("the forward product was {back} requests ago"),
    })
}

/// `out[i] += p[i] + c[i]`: a share's second product and the dealer's correction.
fn add_with_correction(out: &mut [Z64], p: &[Z64], c: &[Z64]) {
    for ((o, &q), &c) in out.iter_mut().zip(p).zip(c) {
        *o += q + c;
    }
}

/// What a forward product keeps for its backward pass: the public `E = X - A` and
/// `F = W - B`, the product's shape and the number of its triple's request. Nothing
/// else: the backward pass shares the masks as `[A] = [X] - E` and `[B] = [W] - F`
/// (party 0 subtracting), from the operands it is given again, so a layer holds no
/// mask-sized share between its passes. Its `Debug` shows the shape and the request only.
pub struct Kept<S> {
    /// The forward product's shape.
    pub shape: S,
    /// The number of the forward's triple request.
    pub request: u64,
    e: Vec<Z64>,
    f: Vec<Z64>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Kept<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print masks or their shares.
        f.debug_struct("Kept")
            .field("shape", &self.shape)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// What a dense layer's forward product ([`matmul_keeping`]) keeps for its backward pass
/// ([`dense_backward`]).
pub type KeptProduct = Kept<MatDims>;

/// [`matmul`], keeping what the backward pass of a dense layer needs: `None` for a
/// product with nothing to mask (`m n = 0` or `k = 0`), which opens nothing.
///
/// # Security
/// As [`matmul`]; what is kept is this party's view (the public `E`, `F`).
///
/// # Communication
/// As [`matmul`].
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If a length does not match `dims`.
pub fn matmul_keeping<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[Z64],
    y: &[Z64],
    dims: MatDims,
    out: &mut [Z64],
    gemm: MatmulFn<Z64>,
) -> Result<Option<KeptProduct>, MpcError> {
    let MatDims { m, k, n } = dims;
    assert!(
        x.len() == m * k && y.len() == k * n && out.len() == m * n,
        "matmul: shape mismatch"
    );
    if m * n == 0 {
        return Ok(None);
    }
    if k == 0 {
        out.fill(Z64::ZERO);
        return Ok(None);
    }
    let t = corr.matrix(dims)?;
    let request = corr.consumed() - 1;
    let (e, f) = open_pair(link, Tag::Matmul, "matrix product", (x, &t.a), (y, &t.b))?;
    let mut af = vec![Z64::ZERO; m * n];
    gemm(&e, y, dims, out);
    gemm(&t.a, &f, dims, &mut af);
    add_with_correction(out, &af, &t.c);
    Ok(Some(KeptProduct {
        shape: dims,
        request,
        e,
        f,
    }))
}

/// A dense layer's backward products on the masks of its forward product:
/// `[dW] = [X]^T [dY]` (`k x n`) and, with `dx`, `[dX] = [dY] [W]^T` (`m x k`), exact in
/// Z_2^64, where `kept` is what [`matmul_keeping`] kept of the forward product `X W` of
/// the same `[X]` (`m x k`) and `[W]` (`k x n`); `dY` is `m x n`.
///
/// The dealer's dense backward masks ([`Request::DenseBackward`](crate::mpc::dealer::Request))
/// are a fresh `[D]` (`m x n`), `[C_w] = [A^T D]` and `[C_x] = [D B^T]`, `A` and `B` being
/// the forward triple's masks. The parties open only `G = dY - D`, and with the forward's
/// public `E = X - A` and `F = W - B`:
/// `X^T dY = E^T [dY] + [A]^T G + [C_w]` (since `A^T dY = A^T G + A^T D`) and
/// `dY W^T = [dY] F^T + G [B]^T + [C_x]`: four local products. The products are linear in
/// the sharing of the masks, so any sharing of `A` and `B` will do: `[A] = [X] - E` and
/// `[B] = [W] - F`, party 0 subtracting the public values.
/// Fresh triples would open `X^T - A'`, `dY - B'` for the first product and `dY - A''`,
/// `W^T - B''` for the second.
///
/// # Security
/// Each mask hides exactly one secret: `A` only `X`, `B` only `W` (both opened once, in the
/// forward product), `D` only `dY` (opened once, here); each is uniform, fresh, and used
/// for no other opening. Using `E` and `F` again is local computation on values the
/// parties already received, so a party's view of the step is its view with fresh masks
/// for every product, minus the second openings of `X` and `W` and the second opening of
/// `dY`: simulated, as before, by uniform words. The products `A^T D` and `D B^T` travel
/// only as party 1's correction, one-time padded by party 0's fresh shares of them.
///
/// # Communication
/// 1 round; `8 m n` bytes sent per party (fresh triples: 2 rounds, `8 (2 m n + m k + k n)`
/// bytes). Offline: `8 (k n + m k)` bytes to party 1 (`8 k n` without `dx`), what the two
/// fresh triples' corrections took.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If a length does not match `kept.shape`.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    kept: &KeptProduct,
    x: &[Z64],
    w: &[Z64],
    dy: &[Z64],
    dw: &mut [Z64],
    dx: Option<&mut [Z64]>,
    gemm: MatmulFn<Z64>,
) -> Result<(), MpcError> {
    let MatDims { m, k, n } = kept.shape;
    assert!(
        x.len() == m * k
            && w.len() == k * n
            && dy.len() == m * n
            && dw.len() == k * n
            && dx.as_ref().is_none_or(|d| d.len() == m * k),
        "dense_backward: shape mismatch"
    );
    let back = requests_back(corr, kept.request, "dense backward masks")?;
    let t = corr.dense_backward(kept.shape, back, dx.is_some())?;
    let g = open_difference(link, Tag::DenseBackward, "dense backward", dy, &t.d)?;
    // dW = E^T [dY] + [A]^T G + [C_w].
    let tdims = MatDims { m: k, k: m, n };
    let mut t_of = vec![Z64::ZERO; k * m];
    ringnn_core::layers::transpose(&kept.e, m, k, &mut t_of);
    gemm(&t_of, dy, tdims, dw);
    let a = mask_share(link.is_p0(), x, &kept.e);
    ringnn_core::layers::transpose(&a, m, k, &mut t_of);
    let mut p = vec![Z64::ZERO; k * n];
    gemm(&t_of, &g, tdims, &mut p);
    add_with_correction(dw, &p, &t.c_w);
    let Some(dx) = dx else {
        return Ok(());
    };
    // dX = [dY] F^T + G [B]^T + [C_x].
    let xdims = MatDims { m, k: n, n: k };
    let mut t_of = vec![Z64::ZERO; n * k];
    ringnn_core::layers::transpose(&kept.f, k, n, &mut t_of);
    gemm(dy, &t_of, xdims, dx);
    let b = mask_share(link.is_p0(), w, &kept.f);
    ringnn_core::layers::transpose(&b, k, n, &mut t_of);
    let mut p = vec![Z64::ZERO; m * k];
    gemm(&g, &t_of, xdims, &mut p);
    add_with_correction(dx, &p, &t.c_x);
    Ok(())
}

/// A convolution product `[Z] = [M] U([X])` on a convolution triple, exact in Z_2^64:
/// `U` unfolds the image `X` as `product` says (the forward product `W U(X)`, or the
/// weight gradient `dY^T U(X)`, [`ConvProduct`]), `M` is `m x k`, `U(X)` is `k x n`
/// ([`ConvProduct::dims`]). `conv` gives the geometry and the unfolding; `x` is the image.
///
/// An unfolding is a linear map (a copy with zeros in the padding), so
/// `U(X) - U(A) = U(X - A)`: the dealer's triple is an image-shaped `[A]`, `[B]` (`m x
/// k`) and `[C] = B U(A)`; the parties open `E = X - A` (the image's size) and `F = M -
/// B`, and each computes its share of
/// `M U(X) = F U(X) + B U(E) + B U(A) = F U([X]) + [B] U(E) + [C]`
/// from its own shares and the public `E`, `F`: two local products, as [`matmul`], and
/// no party-specific term. [`matmul`] on the unfolded matrix would open `U(X) - A'`,
/// about `kernel^2 / stride^2` times the image (25x less 4 rows and columns for LeNet's
/// 5x5 kernels without padding: 18.4x and 11.1x for its two convolutions).
///
/// # Security
/// `E` and `F` are masked by the uniform, fresh `A` and `B` (each entry of each a fresh
/// uniform word from the dealer, used for this opening only): both are uniform whatever
/// `X` and `M` are, so each party's view (the other's shares of `E` and `F`) is simulated
/// by uniform words. What a party holds afterwards is a share of `Z`, as with [`matmul`].
/// Through [`Conv2d::backward`](ringnn_core::layers::Conv2d::backward) the image `X` of a
/// layer is opened (masked) once in its forward product and once, under another mask, in
/// its weight gradient; no mask serves both. In training
/// ([`Conv2d::backward_kept`](ringnn_core::layers::Conv2d::backward_kept)) the weight
/// gradient reuses the forward's opening instead ([`conv_backward`]).
///
/// # Communication
/// 1 round; `8 (batch c h w + m k)` bytes sent per party (the image once, and `M`),
/// where [`matmul`] on the unfolded matrix sends `8 (m k + k n)`, `k n` being the
/// unfolded matrix. Offline: `8 m n` bytes to party 1, as [`matmul`].
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If a length does not match the shape.
#[allow(clippy::too_many_arguments)]
pub fn conv_product<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    conv: &dyn ConvUnfold<Z64>,
    product: ConvProduct,
    x: &[Z64],
    m_in: &[Z64],
    out: &mut [Z64],
    gemm: MatmulFn<Z64>,
) -> Result<(), MpcError> {
    conv_product_keeping(link, corr, conv, product, x, m_in, out, gemm).map(drop)
}

/// What a convolution's forward product ([`conv_product_keeping`]) keeps for its
/// backward pass ([`conv_backward`]): `E` has the image's shape.
pub type KeptConv = Kept<ConvShape>;

/// [`conv_product`], keeping what the backward pass needs ([`KeptConv`]; meaningful for
/// the forward product): `None` for a product with nothing to mask, which opens
/// nothing.
///
/// # Security
/// As [`conv_product`]; what is kept is this party's view (the public `E`, `F`).
///
/// # Communication
/// As [`conv_product`].
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If a length does not match the shape.
#[allow(clippy::too_many_arguments)]
pub fn conv_product_keeping<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    conv: &dyn ConvUnfold<Z64>,
    product: ConvProduct,
    x: &[Z64],
    m_in: &[Z64],
    out: &mut [Z64],
    gemm: MatmulFn<Z64>,
) -> Result<Option<KeptConv>, MpcError> {
    let shape = conv.shape();
    let dims = product.dims(shape);
    let MatDims { m, k, n } = dims;
    let img = shape.image_len();
    assert!(
        x.len() == img && m_in.len() == m * k && out.len() == m * n,
        "conv_product: shape mismatch"
    );
    if m * n == 0 {
        return Ok(None);
    }
    if k == 0 {
        out.fill(Z64::ZERO);
        return Ok(None);
    }
    let unfold = |v: &[Z64], cols: &mut [Z64]| match product {
        ConvProduct::Forward => conv.unfold_t(v, cols),
        ConvProduct::Weights => conv.im2col(v, cols),
    };
    let t = corr.conv(shape, product)?;
    let request = corr.consumed() - 1;
    let (e, f) = open_pair(
        link,
        Tag::Conv,
        "convolution product",
        (x, &t.a),
        (m_in, &t.b),
    )?;
    let mut cols = vec![Z64::ZERO; k * n];
    // F U([X]) into `out`, then [B] U(E) beside it.
    unfold(x, &mut cols);
    gemm(&f, &cols, dims, out);
    unfold(&e, &mut cols);
    let mut be = vec![Z64::ZERO; m * n];
    gemm(&t.b, &cols, dims, &mut be);
    add_with_correction(out, &be, &t.c);
    Ok(Some(KeptConv {
        shape,
        request,
        e,
        f,
    }))
}

/// A convolution's backward products on the masks of its forward product:
/// `[dW] = [dY^T] U([X])` (`out_channels x patch`, `U` the row-major unfolding) and, with
/// `dcols`, the input gradient's unfolded form `[W]^T [dY^T]` (`patch x rows`), exact in
/// Z_2^64, where `kept` is what [`conv_product_keeping`] kept of the forward product
/// `W U^T(X)`.
///
/// The dealer's convolution backward masks
/// ([`Request::ConvBackward`](crate::mpc::dealer::Request)) are a fresh `[D]` (`out_channels x
/// rows`), `[C_w] = [D U(A)]` and `[C_x] = [B^T D]`, `A` (the image's shape) and `B` the
/// forward triple's masks. The parties open only `G = dY^T - D`; with the forward's public
/// `E = X - A` and `F = W - B`, and `U` linear:
/// `dY^T U(X) = [dY^T] U(E) + G U([A]) + [C_w]` and
/// `W^T dY^T = F^T [dY^T] + [B]^T G + [C_x]`: four local products, on the masks shared as
/// `[A] = [X] - E`, `[B] = [W] - F` (as [`dense_backward`]). Fresh triples would open the image and `dY^T` for the first product
/// ([`conv_product`]) and `W^T` and `dY^T` for the second ([`matmul`]).
///
/// # Security
/// Each mask hides exactly one secret: `A` only the image `X`, `B` only `W` (both opened
/// once, in the forward product), `D` only `dY^T` (opened once, here); each is uniform,
/// fresh and used for no other opening. Using `E` and `F` again is local computation on
/// values already received, so a party's view is its view with fresh masks for every
/// product minus the repeated openings of `X`, `W` and `dY^T`. `D U(A)` and `B^T D`
/// reach party 1 only as its correction, one-time padded by party 0's fresh shares.
///
/// # Communication
/// 1 round; `8 out_channels rows` bytes sent per party (fresh triples: 2 rounds and
/// `8 (image + 2 out_channels rows + patch out_channels)` bytes with `dcols`, 1 round and
/// `8 (image + out_channels rows)` without). Offline: `8 (out_channels patch + patch
/// rows)` bytes to party 1 (`8 out_channels patch` without `dcols`), what the fresh
/// triples' corrections took.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If a length does not match `kept.shape`.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    kept: &KeptConv,
    conv: &dyn ConvUnfold<Z64>,
    x: &[Z64],
    w: &[Z64],
    dyt: &[Z64],
    dw: &mut [Z64],
    dcols: Option<&mut [Z64]>,
    gemm: MatmulFn<Z64>,
) -> Result<(), MpcError> {
    let shape = kept.shape;
    let (o, patch, rows) = (shape.out_channels, shape.patch(), shape.rows());
    assert!(
        conv.shape() == shape
            && x.len() == shape.image_len()
            && w.len() == o * patch
            && dyt.len() == o * rows
            && dw.len() == o * patch
            && dcols.as_ref().is_none_or(|d| d.len() == patch * rows),
        "conv_backward: shape mismatch"
    );
    let back = requests_back(corr, kept.request, "convolution backward masks")?;
    let t = corr.conv_backward(shape, back, dcols.is_some())?;
    let g = open_difference(link, Tag::ConvBackward, "convolution backward", dyt, &t.d)?;
    // dW = [dY^T] U(E) + G U([A]) + [C_w].
    let wdims = MatDims {
        m: o,
        k: rows,
        n: patch,
    };
    let mut cols = vec![Z64::ZERO; rows * patch];
    conv.im2col(&kept.e, &mut cols);
    gemm(dyt, &cols, wdims, dw);
    conv.im2col(&mask_share(link.is_p0(), x, &kept.e), &mut cols);
    let mut p = vec![Z64::ZERO; o * patch];
    gemm(&g, &cols, wdims, &mut p);
    add_with_correction(dw, &p, &t.c_w);
    let Some(dcols) = dcols else {
        return Ok(());
    };
    // W^T dY^T = F^T [dY^T] + [B]^T G + [C_x].
    let xdims = MatDims {
        m: patch,
        k: o,
        n: rows,
    };
    let mut t_of = vec![Z64::ZERO; patch * o];
    ringnn_core::layers::transpose(&kept.f, o, patch, &mut t_of);
    gemm(&t_of, dyt, xdims, dcols);
    let b = mask_share(link.is_p0(), w, &kept.f);
    ringnn_core::layers::transpose(&b, o, patch, &mut t_of);
    let mut p = vec![Z64::ZERO; patch * rows];
    gemm(&t_of, &g, xdims, &mut p);
    add_with_correction(dcols, &p, &t.c_x);
    Ok(())
}
