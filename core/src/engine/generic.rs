//! The provided composites of [`Engine`] as free functions, built only from primitives.
//! Engines that override a composite are tested against these.

use super::recip::{RecipPieces, RECIP_MAX_PIECES};
use super::{ConvUnfold, Engine, MatDims};
use crate::approx::lines::Lines;

/// Scratch elements [`max_of_lines`] needs for `n` inputs.
pub const fn max_of_lines_scratch(lines: &Lines, n: usize) -> usize {
    4 * lines.parts() * n
}

/// Number of candidate bit lengths `k = 0..=62` the reciprocal normalises over.
pub const RECIP_CANDIDATES: usize = 63;

/// Scratch elements [`reciprocal`] needs for `n` inputs.
pub const fn reciprocal_scratch(n: usize) -> usize {
    (3 * RECIP_CANDIDATES + 11) * n + reciprocal_pieces_scratch(n)
}

/// Newton-Raphson iterations after the pieces of [`RecipPieces`], whose relative error is
/// at most `2^-17`; each iteration squares it, so `i` iterations leave `2^-(17 * 2^i)`,
/// chosen below `2^-(f+2)`.
pub const fn newton_iterations(f: u32) -> u32 {
    if f <= 15 {
        0
    } else if f <= 32 {
        1
    } else {
        2
    }
}

/// Scratch elements [`reciprocal_pieces`] needs for `n` inputs.
pub const fn reciprocal_pieces_scratch(n: usize) -> usize {
    2 * (RECIP_MAX_PIECES - 1) * n + 3 * n
}

/// [`Engine::conv_forward_product`]: unfolds `x` into `cols` and calls
/// [`Engine::matmul`].
///
/// # Errors
/// What the engine reports.
///
/// # Panics
/// If a length does not match the shape.
pub fn conv_forward_product<E: Engine + ?Sized>(
    e: &mut E,
    conv: &dyn ConvUnfold<E::Elem>,
    x: &[E::Elem],
    w: &[E::Elem],
    out: &mut [E::Elem],
    cols: &mut [E::Elem],
) -> Result<(), E::Error> {
    let s = conv.shape();
    conv.unfold_t(x, cols);
    e.matmul(
        w,
        cols,
        MatDims {
            m: s.out_channels,
            k: s.patch(),
            n: s.rows(),
        },
        out,
    )
}

/// [`Engine::conv_weight_product`]: unfolds `x` into `cols` (row-major) and calls
/// [`Engine::matmul`].
///
/// # Errors
/// What the engine reports.
///
/// # Panics
/// If a length does not match the shape.
pub fn conv_weight_product<E: Engine + ?Sized>(
    e: &mut E,
    conv: &dyn ConvUnfold<E::Elem>,
    dyt: &[E::Elem],
    x: &[E::Elem],
    dw: &mut [E::Elem],
    cols: &mut [E::Elem],
) -> Result<(), E::Error> {
    let s = conv.shape();
    conv.im2col(x, cols);
    e.matmul(
        dyt,
        cols,
        MatDims {
            m: s.out_channels,
            k: s.rows(),
            n: s.patch(),
        },
        dw,
    )
}

/// [`Engine::dense_backward_products`]: `dw = x^T dy` and, when asked, `dx = dy w^T`,
/// each transposed into `scratch` and computed by [`Engine::matmul`].
///
/// # Errors
/// What the engine reports.
///
/// # Panics
/// If a length does not match `dims` or `scratch` is shorter than `max(m k, k n)`.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_products<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    w: &[E::Elem],
    dy: &[E::Elem],
    dims: MatDims,
    dw: &mut [E::Elem],
    dx: Option<&mut [E::Elem]>,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let MatDims { m, k, n } = dims;
    let xt = &mut scratch[..m * k];
    crate::layers::transpose(x, m, k, xt);
    e.matmul(xt, dy, MatDims { m: k, k: m, n }, dw)?;
    let Some(dx) = dx else {
        return Ok(());
    };
    let wt = &mut scratch[..k * n];
    crate::layers::transpose(w, k, n, wt);
    e.matmul(dy, wt, MatDims { m, k: n, n: k }, dx)
}

/// [`Engine::conv_backward_products`]: [`Engine::conv_weight_product`], then (with `dx`)
/// `w` transposed into `wt` and `cols = wt * dyt` by [`Engine::matmul`].
///
/// # Errors
/// What the engine reports.
///
/// # Panics
/// If a length does not match the shape.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward_products<E: Engine + ?Sized>(
    e: &mut E,
    conv: &dyn ConvUnfold<E::Elem>,
    x: &[E::Elem],
    w: &[E::Elem],
    dyt: &[E::Elem],
    dw: &mut [E::Elem],
    dx: bool,
    cols: &mut [E::Elem],
    wt: &mut [E::Elem],
) -> Result<(), E::Error> {
    e.conv_weight_product(conv, dyt, x, dw, cols)?;
    if !dx {
        return Ok(());
    }
    let s = conv.shape();
    let (o, patch) = (s.out_channels, s.patch());
    crate::layers::transpose(w, o, patch, wt);
    e.matmul(
        wt,
        dyt,
        MatDims {
            m: patch,
            k: o,
            n: s.rows(),
        },
        cols,
    )
}

/// See [`Engine::relu`]. Scratch: `3 * x.len()`.
pub fn relu<E: Engine + ?Sized>(
    e: &mut E,
    x: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = x.len();
    let (bits, rest) = scratch.split_at_mut(n);
    let (zeros, rest) = rest.split_at_mut(n);
    let out = &mut rest[..n];
    e.is_negative(x, bits)?;
    zeros.fill(E::Elem::default());
    e.select(bits, zeros, x, out)?;
    x.copy_from_slice(out);
    Ok(())
}

/// See [`Engine::max_assign`]: [`Engine::max_pair`], its bits in the scratch. Scratch:
/// `2 * a.len()`.
pub fn max_assign<E: Engine + ?Sized>(
    e: &mut E,
    a: &mut [E::Elem],
    b: &[E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = a.len();
    assert_eq!(b.len(), n, "max_assign: length mismatch");
    let (bits, rest) = scratch.split_at_mut(n);
    e.max_pair(a, b, bits, rest)
}

/// See [`Engine::max_pair`]: `bits = [left - right < 0]` by
/// [`Engine::is_negative_diff`], then one [`Engine::select`]. Scratch: `left.len()`.
pub fn max_pair<E: Engine + ?Sized>(
    e: &mut E,
    left: &mut [E::Elem],
    right: &[E::Elem],
    bits: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = left.len();
    assert!(
        right.len() == n && bits.len() == n,
        "max_pair: length mismatch"
    );
    let d = &mut scratch[..n];
    d.copy_from_slice(left);
    e.sub_assign(d, right)?;
    e.is_negative_diff(d, bits)?;
    e.select(bits, right, left, d)?;
    left.copy_from_slice(d);
    Ok(())
}

/// Number of comparisons of the halving tree of [`max_tree`] over `kk` candidates, and so
/// of its bits per position: each one rules out one candidate.
pub const fn max_tree_bits(kk: usize) -> usize {
    kk.saturating_sub(1)
}

/// Scratch of [`max_tree`] for `kk` candidates of `n` positions.
pub const fn max_tree_scratch(kk: usize, n: usize) -> usize {
    2 * (kk / 2) * n
}

/// See [`Engine::max_tree`]: per level, one [`Engine::max_pair`] of the left half of the
/// rows with the right half (`left < right`: the right one wins), its bits kept in `bits`
/// when given (level after level: `h` rows of `n` for a level of `h` comparisons).
/// Scratch: [`max_tree_scratch`].
pub fn max_tree<E: Engine + ?Sized>(
    e: &mut E,
    v: &mut [E::Elem],
    kk: usize,
    mut bits: Option<&mut [E::Elem]>,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    assert!(
        kk > 0 && v.len().is_multiple_of(kk),
        "max_tree: shape mismatch"
    );
    let nn = v.len() / kk;
    if let Some(b) = bits.as_deref() {
        assert_eq!(b.len(), max_tree_bits(kk) * nn, "max_tree: bits length");
    }
    let (own, rest) = scratch.split_at_mut((kk / 2) * nn);
    let mut cnt = kk;
    let mut at = 0;
    while cnt > 1 {
        let h = cnt / 2;
        let w = h * nn;
        let (left, right) = v.split_at_mut(w);
        let b = match bits.as_deref_mut() {
            Some(b) => &mut b[at..at + w],
            None => &mut own[..w],
        };
        e.max_pair(left, &right[..w], b, rest)?;
        if cnt % 2 == 1 {
            v.copy_within(2 * w..2 * w + nn, w);
        }
        at += w;
        cnt = h + cnt % 2;
    }
    Ok(())
}

/// Scratch of [`route_tree`] for `kk` candidates of `n` positions.
pub const fn route_tree_scratch(kk: usize, n: usize) -> usize {
    (kk / 2) * n
}

/// The backward pass of [`max_tree`]: `out` (`kk` rows of `n`) gets `dy` at the candidate
/// that won each position and 0 at the others, from the tree's `bits`, level by level
/// from the top: a slot's value goes to the right candidate it compared as
/// `g_right = g * bit` and to the left as `g - g_right` (the odd slot carried up gets its
/// value back). One product per bit, exact (the bits are 0 or 1 at integer scale), so
/// `out` is `dy` times the one-hot selection on every engine; one round per level.
/// With `dy` all ones, `out` is the one-hot selection itself. Scratch:
/// [`route_tree_scratch`].
///
/// # Panics
/// If the lengths do not match `kk` and `dy.len()`.
pub fn route_tree<E: Engine + ?Sized>(
    e: &mut E,
    bits: &[E::Elem],
    kk: usize,
    dy: &[E::Elem],
    out: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let nn = dy.len();
    assert!(
        kk > 0 && out.len() == kk * nn && bits.len() == max_tree_bits(kk) * nn,
        "route_tree: shape mismatch"
    );
    // The levels' sizes, bottom up (at most 64 levels for any slice length).
    let mut levels = [(0usize, 0usize); 64];
    let (mut cnt, mut depth, mut at) = (kk, 0, 0);
    while cnt > 1 {
        let h = cnt / 2;
        levels[depth] = (cnt, at);
        at += h * nn;
        depth += 1;
        cnt = h + cnt % 2;
    }
    out[..nn].copy_from_slice(dy);
    for &(cnt, at) in levels[..depth].iter().rev() {
        let h = cnt / 2;
        let w = h * nn;
        if cnt % 2 == 1 {
            out.copy_within(w..w + nn, 2 * w);
        }
        let g_right = &mut scratch[..w];
        e.mul(&out[..w], &bits[at..at + w], g_right)?;
        let (left, right) = out.split_at_mut(w);
        e.sub_assign(left, g_right)?;
        right[..w].copy_from_slice(g_right);
    }
    Ok(())
}

/// See [`Engine::clamp`]; the derivative is 1 on `[lo, hi]` (boundaries included).
/// Scratch: `4 * x.len()`.
pub fn clamp<E: Engine + ?Sized>(
    e: &mut E,
    x: &mut [E::Elem],
    lo: f64,
    hi: f64,
    grad: Option<&mut [E::Elem]>,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = x.len();
    let (d, rest) = scratch.split_at_mut(2 * n);
    let bits = &mut rest[..2 * n];
    // d[..n] = hi - x (negative where x > hi); d[n..] = x - lo (negative where x < lo):
    // one batched comparison.
    d[..n].copy_from_slice(x);
    e.scale(&mut d[..n], -1.0)?;
    let h = e.public(hi);
    e.add_public(&mut d[..n], h)?;
    d[n..].copy_from_slice(x);
    let l = e.public(-lo);
    e.add_public(&mut d[n..], l)?;
    e.is_negative(d, bits)?;
    let (above, below) = bits.split_at(n);
    let (c, t) = d.split_at_mut(n);
    e.fill(c, hi)?;
    e.select(above, c, x, t)?;
    e.fill(c, lo)?;
    e.select(below, c, t, x)?;
    if let Some(g) = grad {
        assert_eq!(g.len(), n, "clamp: gradient length mismatch");
        // 1 - above - below, at integer scale, then to the element scale.
        g.copy_from_slice(above);
        e.add_assign(g, below)?;
        let m1 = e.public_int(-1);
        e.mul_public(g, m1)?;
        let one = e.public_int(1);
        e.add_public(g, one)?;
        let unit = e.public(1.0);
        e.mul_public(g, unit)?;
    }
    Ok(())
}

/// See [`Engine::max_of_lines`].
///
/// The lines are evaluated side by side, then reduced by a tree of comparisons in which
/// each level is one batched [`Engine::is_negative`] call: `ceil(log2(parts))` rounds.
pub fn max_of_lines<E: Engine + ?Sized>(
    e: &mut E,
    lines: &Lines,
    x: &[E::Elem],
    out: &mut [E::Elem],
    grad: Option<&mut [E::Elem]>,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = x.len();
    let m = lines.parts();
    assert_eq!(out.len(), n, "max_of_lines: length mismatch");
    let (l, rest) = scratch.split_at_mut(m * n);
    let (s, rest) = rest.split_at_mut(m * n);
    let h = m / 2;
    let (d, rest) = rest.split_at_mut(h * n);
    let (bits, rest) = rest.split_at_mut(h * n);
    let t = &mut rest[..h * n];
    for j in 0..m {
        let (a, b) = lines.line(j);
        let lj = &mut l[j * n..(j + 1) * n];
        lj.copy_from_slice(x);
        e.scale(lj, a)?;
        let p = e.public(b);
        e.add_public(lj, p)?;
        if grad.is_some() {
            e.fill(&mut s[j * n..(j + 1) * n], a)?;
        }
    }
    let mut cnt = m;
    while cnt > 1 {
        let h = cnt / 2;
        let w = h * n;
        let (left, right) = l.split_at_mut(w);
        d[..w].copy_from_slice(left);
        e.sub_assign(&mut d[..w], &right[..w])?;
        e.is_negative(&d[..w], &mut bits[..w])?;
        e.select(&bits[..w], &right[..w], left, &mut t[..w])?;
        left.copy_from_slice(&t[..w]);
        if grad.is_some() {
            let (sl, sr) = s.split_at_mut(w);
            e.select(&bits[..w], &sr[..w], sl, &mut t[..w])?;
            sl.copy_from_slice(&t[..w]);
        }
        if cnt % 2 == 1 {
            l.copy_within(2 * w..2 * w + n, w);
            s.copy_within(2 * w..2 * w + n, w);
        }
        cnt = h + cnt % 2;
    }
    out.copy_from_slice(&l[..n]);
    if let Some(g) = grad {
        assert_eq!(g.len(), n, "max_of_lines: gradient length mismatch");
        g.copy_from_slice(&s[..n]);
    }
    Ok(())
}

/// See [`Engine::polynomial`]: Horner's rule, one product and one rescale per degree.
pub fn polynomial<E: Engine + ?Sized>(
    e: &mut E,
    coeffs: &[f64],
    x: &[E::Elem],
    out: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = x.len();
    assert_eq!(out.len(), n, "polynomial: length mismatch");
    let Some((&top, rest)) = coeffs.split_last() else {
        return e.fill(out, 0.0);
    };
    let t = &mut scratch[..n];
    e.fill(out, top)?;
    for &c in rest.iter().rev() {
        e.mul(out, x, t)?;
        e.rescale(t)?;
        out.copy_from_slice(t);
        let p = e.public(c);
        e.add_public(out, p)?;
    }
    Ok(())
}

/// See [`Engine::shift_right_and_scaled`]: `scaled = c x`, then both shifts.
pub fn shift_right_and_scaled<E: Engine + ?Sized>(
    e: &mut E,
    x: &mut [E::Elem],
    bits: u32,
    c: E::Public,
    scaled: &mut [E::Elem],
    scaled_bits: u32,
) -> Result<(), E::Error> {
    scaled.copy_from_slice(x);
    e.mul_public(scaled, c)?;
    e.shift_right(scaled, scaled_bits)?;
    e.shift_right(x, bits)
}

/// See [`Engine::reciprocal`].
///
/// # Method
/// With `r` the raw value of `x` and `k` its bit length (`r` in `[2^(k-1), 2^k)`, found
/// by 62 comparisons `r >= 2^j`, batched in one call, as one-hot bits `o_k`), `s = r /
/// 2^k` lies in `[1/2, 1)`. [`Engine::reciprocal_pieces`] gives `y ≈ 1 / s` from 128
/// linear pieces (relative error at most `2^-17`, [`RecipPieces`]), and
/// [`newton_iterations`] steps of `y <- y (2 - s y)` (none for `f <= 15`) bring it below
/// `2^-(f+2)`. Then `2^g / x = y * 2^(f + g - k)`.
///
/// Both shifts by the secret `k` are products with public combinations of the one-hot
/// bits, which are local: `s = (r P) >> (62 - f)` with `P = sum_{k >= 1} o_k 2^(62-k)`
/// (`r P = r 2^(62-k)` lies in `[2^61, 2^62)`), and the result is `y Q + (y P') >> (61 -
/// f - g) + (y o_62) >> (62 - f - g)` with `Q = sum_{1 <= k <= f+g} o_k 2^(f+g-k)`
/// (exact) and `P' = sum_{f+g < k <= 61} o_k 2^(61-k)` (`y P' < 2^61`); `k = 0` enters
/// no weight. Where a shift is exact the truncated product has zero low bits, so every
/// result is the shifted candidate [`Plain`](crate::Plain) computes from
/// the bit length directly, bit for bit on `Plain`, up to the two-party truncation's
/// rounding of the rounded shifts. Rounds: the comparisons, a product and a truncation
/// for `s`, the pieces (one round and a truncation on a spline gate), `4` per Newton
/// step, a product and a truncation for the result.
///
/// # Precision
/// Relative error about `2^-f` plus the truncations of the shifts (at most one ulp of the
/// result). Results need `f + g <= 62` and can only be as large as the safe range: for
/// `x < 2^(g - 62 + f)` the product wraps (counted by [`Engine::overflow_count`] on
/// [`Plain`](crate::Plain)).
///
/// # Values outside the domain
/// For `x <= 0` the bit length is 0 and the one-hot bit `o_0 = [x <= 0]` enters no
/// weight: `s = 0` and the result is `0`, on every engine; `o_0` is what `empty` receives.
/// For `x >= 2^62` (raw) the result is meaningless (`Plain` counts such inputs).
///
/// # Panics
/// If `f + g > 62` or the lengths differ.
pub fn reciprocal<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    out: &mut [E::Elem],
    empty: Option<&mut [E::Elem]>,
    g: u32,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    const K: usize = RECIP_CANDIDATES;
    let n = x.len();
    let f = e.frac_bits();
    assert!(f + g <= 62, "reciprocal: f + extra_bits must be at most 62");
    assert_eq!(out.len(), n, "reciprocal: length mismatch");
    let (c, rest) = scratch.split_at_mut(K * n);
    let (bits, rest) = rest.split_at_mut(K * n);
    let (onehot, rest) = rest.split_at_mut(K * n);
    let (w, rest) = rest.split_at_mut(3 * n);
    let (y, rest) = rest.split_at_mut(n);
    let (t, rest) = rest.split_at_mut(n);
    let (v, rest) = rest.split_at_mut(3 * n);
    let (prod, rest) = rest.split_at_mut(3 * n);

    // b_j = [r >= 2^j] = 1 - [r - 2^j < 0], j = 0..62, in one comparison call.
    let cmp = (K - 1) * n;
    for j in 0..K - 1 {
        let cj = &mut c[j * n..(j + 1) * n];
        cj.copy_from_slice(x);
        let p = e.public_int(-(1i64 << j));
        e.add_public(cj, p)?;
    }
    e.is_negative(&c[..cmp], &mut bits[..cmp])?;
    let m1 = e.public_int(-1);
    let one = e.public_int(1);
    e.mul_public(&mut bits[..cmp], m1)?;
    e.add_public(&mut bits[..cmp], one)?;

    // One-hot of the bit length k: o_0 = 1 - b_0, o_k = b_(k-1) - b_k, o_62 = b_61.
    onehot[..n].copy_from_slice(&bits[..n]);
    e.mul_public(&mut onehot[..n], m1)?;
    e.add_public(&mut onehot[..n], one)?;
    for k in 1..K - 1 {
        let (prev, cur) = bits.split_at(k * n);
        let ok = &mut onehot[k * n..(k + 1) * n];
        ok.copy_from_slice(&prev[(k - 1) * n..]);
        e.sub_assign(ok, &cur[..n])?;
    }
    onehot[(K - 1) * n..].copy_from_slice(&bits[(K - 2) * n..(K - 1) * n]);
    if let Some(z) = empty {
        z.copy_from_slice(&onehot[..n]);
    }

    // s = (r P) >> (62 - f).
    let (f, fg) = (f as usize, (f + g) as usize);
    one_hot_weights(e, onehot, n, |k| (k >= 1).then(|| 62 - k), &mut w[..n], t)?;
    let s = &mut v[2 * n..];
    e.mul(x, &w[..n], s)?;
    e.shift_right(s, (62 - f) as u32)?;

    // y = 1 / s from the pieces, then Newton-Raphson.
    e.reciprocal_pieces(s, y, rest)?;
    let two = e.public(2.0);
    for _ in 0..newton_iterations(f as u32) {
        e.mul(s, y, t)?;
        e.rescale(t)?;
        e.mul_public(t, m1)?;
        e.add_public(t, two)?;
        let yt = &mut prod[..n];
        e.mul(y, t, yt)?;
        e.rescale(yt)?;
        y.copy_from_slice(yt);
    }

    // out = y Q + (y P') >> (61 - f - g) + (y o_62) >> (62 - f - g): the three products
    // in one call, both truncations in one round.
    let exact = |k: usize| (k >= 1 && k <= fg).then(|| fg - k);
    one_hot_weights(e, onehot, n, exact, &mut w[..n], t)?;
    let low = |k: usize| (k > fg && k <= 61).then(|| 61 - k);
    one_hot_weights(e, onehot, n, low, &mut w[n..2 * n], t)?;
    one_hot_weights(
        e,
        onehot,
        n,
        |k| (k > fg && k == 62).then_some(0),
        &mut w[2 * n..],
        t,
    )?;
    for part in v.chunks_exact_mut(n) {
        part.copy_from_slice(y);
    }
    e.mul(v, w, prod)?;
    let (hi, rest) = prod.split_at_mut(n);
    let shifts = [
        61usize.saturating_sub(fg) as u32,
        62usize.saturating_sub(fg) as u32,
    ];
    e.shift_right_chunks(rest, n, &shifts)?;
    out.copy_from_slice(hi);
    e.add_assign(out, &rest[..n])?;
    e.add_assign(out, &rest[n..])
}

/// See [`Engine::reciprocal_pieces`]: with `b_k = [s < p_k]` for the `N - 1` knots (one
/// comparison call at [`RecipPieces::width`]), the piece's coefficients are
/// `mul = mul_(N-1) - sum_k (mul_k - mul_(k-1)) b_k` and `add` likewise (local), and
/// `y = (s mul + add) >> shift`: one product and one truncation.
///
/// # Panics
/// If the lengths differ or `scratch` is shorter than [`reciprocal_pieces_scratch`].
pub fn reciprocal_pieces<E: Engine + ?Sized>(
    e: &mut E,
    s: &[E::Elem],
    out: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = s.len();
    assert_eq!(out.len(), n, "reciprocal_pieces: length mismatch");
    let rp = RecipPieces::new(e.frac_bits());
    let pieces = rp.count();
    let (last_mul, last_add) = rp.piece(pieces - 1);
    if pieces == 1 {
        out.copy_from_slice(s);
        e.mul_public(out, e.public_int(last_mul.to_signed()))?;
        e.add_public(out, e.public_int(last_add.to_signed()))?;
        return e.shift_right(out, rp.shift());
    }
    let knots = (pieces - 1) * n;
    let (c, rest) = scratch.split_at_mut(knots);
    let (b, rest) = rest.split_at_mut(knots);
    let (mul, rest) = rest.split_at_mut(n);
    let (add, rest) = rest.split_at_mut(n);
    let t = &mut rest[..n];
    for (k, ck) in (1..pieces).zip(c.chunks_exact_mut(n)) {
        ck.copy_from_slice(s);
        e.add_public(ck, e.public_int(-rp.knot(k)))?;
    }
    e.is_negative_within(c, b, rp.width())?;
    e.fill(mul, 0.0)?;
    e.add_public(mul, e.public_int(last_mul.to_signed()))?;
    e.fill(add, 0.0)?;
    e.add_public(add, e.public_int(last_add.to_signed()))?;
    let mut before = rp.piece(0);
    for (k, bk) in (1..pieces).zip(b.chunks_exact(n)) {
        let after = rp.piece(k);
        for (acc, d) in [
            (&mut *mul, after.0 - before.0),
            (&mut *add, after.1 - before.1),
        ] {
            t.copy_from_slice(bk);
            e.mul_public(t, e.public_int(-d.to_signed()))?;
            e.add_assign(acc, t)?;
        }
        before = after;
    }
    e.mul(s, mul, out)?;
    e.add_assign(out, add)?;
    e.shift_right(out, rp.shift())
}

/// `w = sum_k o_k 2^(exp(k))` over the one-hot bits `onehot` (the `k`-th block of `n`),
/// leaving out the `k` with `exp(k) = None`: local (products with public powers of two).
/// `t` holds `n` elements.
fn one_hot_weights<E: Engine + ?Sized>(
    e: &mut E,
    onehot: &[E::Elem],
    n: usize,
    exp: impl Fn(usize) -> Option<usize>,
    w: &mut [E::Elem],
    t: &mut [E::Elem],
) -> Result<(), E::Error> {
    e.fill(w, 0.0)?;
    for k in 0..RECIP_CANDIDATES {
        let Some(sh) = exp(k) else { continue };
        t.copy_from_slice(&onehot[k * n..(k + 1) * n]);
        let p = e.public_int(1i64 << sh);
        e.mul_public(t, p)?;
        e.add_assign(w, t)?;
    }
    Ok(())
}

/// Scratch elements [`normalize_rows`] needs for `rows x cols` values.
pub const fn normalize_rows_scratch(rows: usize, cols: usize) -> usize {
    2 * rows * cols + 4 * rows + reciprocal_scratch(rows)
}

/// See [`Engine::normalize_rows`]: the mask `[v < 0]` and one product clip (when `clip`);
/// row sums by local additions; one [`Engine::reciprocal`] per row with `guard_bits` guard
/// bits, which also gives `z = [sum <= 0]` (0 where `z` is 1); one product and one
/// truncation by `f + guard_bits` per value; then `z` times `1 / cols` (a public
/// constant, local) added to every value of its row: an empty row becomes uniform with
/// no comparison of its own.
///
/// # Panics
/// If `v` is not `rows * cols` long or `scratch` is shorter than
/// [`normalize_rows_scratch`].
pub fn normalize_rows<E: Engine + ?Sized>(
    e: &mut E,
    v: &mut [E::Elem],
    rows: usize,
    cols: usize,
    clip: bool,
    guard_bits: u32,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = rows * cols;
    assert_eq!(v.len(), n, "normalize_rows: shape mismatch");
    let f = e.frac_bits();
    let (wide, rest) = scratch.split_at_mut(n);
    let (prod, rest) = rest.split_at_mut(n);
    let (sum, rest) = rest.split_at_mut(rows);
    let (z, rest) = rest.split_at_mut(rows);
    let (recip, rest) = rest.split_at_mut(rows);
    let (tmp, rest) = rest.split_at_mut(rows);
    if clip {
        // mask = [v < 0] in `wide`; v -= mask * v.
        e.is_negative(v, wide)?;
        e.mul(wide, v, prod)?;
        e.sub_assign(v, prod)?;
    }
    row_sums(e, v, cols, sum, tmp)?;
    // v = (v * 2^g / sum) >> (f + g), 0 on an empty row.
    e.reciprocal(sum, recip, Some(&mut *z), guard_bits, rest)?;
    broadcast(recip, cols, wide);
    e.mul(v, wide, prod)?;
    e.shift_right(prod, f + guard_bits)?;
    v.copy_from_slice(prod);
    fill_empty_rows(e, v, cols, z, wide)
}

/// An empty row (`z` = 1 from [`Engine::reciprocal`], whose result is 0 there) becomes
/// uniform: `v += z / cols` (the public `1 / cols`, rounded, times the 0/1 bit: local).
/// Tells the engine which rows were empty. `wide` holds `rows * cols` elements.
pub(crate) fn fill_empty_rows<E: Engine + ?Sized>(
    e: &mut E,
    v: &mut [E::Elem],
    cols: usize,
    z: &[E::Elem],
    wide: &mut [E::Elem],
) -> Result<(), E::Error> {
    e.note_empty_rows(z);
    broadcast(z, cols, wide);
    let share = e.public(1.0 / cols as f64);
    e.mul_public(wide, share)?;
    e.add_assign(v, wide)
}

/// `out[i] = sum_j v[i][j]`, one column at a time (local additions). `col` holds a column.
pub(crate) fn row_sums<E: Engine + ?Sized>(
    e: &mut E,
    v: &[E::Elem],
    cols: usize,
    out: &mut [E::Elem],
    col: &mut [E::Elem],
) -> Result<(), E::Error> {
    out.fill(E::Elem::default());
    for j in 0..cols {
        for (i, c) in col.iter_mut().enumerate() {
            *c = v[i * cols + j];
        }
        e.add_assign(out, col)?;
    }
    Ok(())
}

/// `out[i * cols + j] = per_row[i]`.
pub(crate) fn broadcast<T: Copy>(per_row: &[T], cols: usize, out: &mut [T]) {
    for (i, &v) in per_row.iter().enumerate() {
        out[i * cols..(i + 1) * cols].fill(v);
    }
}

/// Scratch of [`argmax_rows`] for `rows` rows of `cols` values.
pub const fn argmax_rows_scratch(rows: usize, cols: usize) -> usize {
    2 * cols * rows + max_tree_bits(cols) * rows + rows + max_tree_scratch(cols, rows)
}

/// `out[r]` = the column of the largest value in row `r` of `v` (`rows x cols`,
/// row-major), at integer scale: [`Engine::max_tree`] over the columns, its bits routed
/// into the one-hot selection ([`route_tree`] of ones), then `sum_c c * sel[c]` (local).
/// Nothing is revealed; ties go to the candidate the tree keeps (the left one at each
/// comparison). Scratch: [`argmax_rows_scratch`].
///
/// # Panics
/// If the lengths do not match `rows` and `cols`, or `cols` is 0.
pub fn argmax_rows<E: Engine + ?Sized>(
    e: &mut E,
    v: &[E::Elem],
    rows: usize,
    cols: usize,
    out: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    assert!(cols > 0, "argmax_rows: no columns");
    assert_eq!(v.len(), rows * cols, "argmax_rows: shape");
    assert_eq!(out.len(), rows, "argmax_rows: output length");
    let n = rows * cols;
    let (cand, rest) = scratch.split_at_mut(n);
    let (sel, rest) = rest.split_at_mut(n);
    let (bits, rest) = rest.split_at_mut(max_tree_bits(cols) * rows);
    let (ones, rest) = rest.split_at_mut(rows);
    // Candidate-major: the tree compares whole columns.
    for r in 0..rows {
        for c in 0..cols {
            cand[c * rows + r] = v[r * cols + c];
        }
    }
    e.max_tree(cand, cols, Some(bits), rest)?;
    ones.fill(E::Elem::default());
    let one = e.public_int(1);
    e.add_public(ones, one)?;
    route_tree(e, bits, cols, ones, sel, rest)?;
    out.fill(E::Elem::default());
    for c in 1..cols {
        let s = &mut sel[c * rows..(c + 1) * rows];
        let k = e.public_int(c as i64);
        e.mul_public(s, k)?;
        e.add_assign(out, s)?;
    }
    Ok(())
}
