//! Sliding square windows over image planes: the geometry that convolution unfolds and
//! pooling reduces, and the two local moves on it, gathering each window's elements
//! ([`Windows::gather`]) and adding them back ([`Windows::scatter_add`], the adjoint).
//! Gathering and scattering are copies and additions: free on every engine.

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

/// Values laid out by plane `q`, window position `p` and window offset `j`: the one for
/// `(q, p, j)` is `data[base(q) + p * p_stride + j * j_stride]`.
pub(crate) struct Strided<'a, T, F> {
    /// The values.
    pub(crate) data: &'a [T],
    /// Where plane `q`'s values start.
    pub(crate) base: F,
    /// Step between window positions.
    pub(crate) p_stride: usize,
    /// Step between window offsets.
    pub(crate) j_stride: usize,
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

    /// The adjoint of [`Windows::gather`]: `dx = sum over (q, p, j) of the `(q, p, j)` value of `src``
    /// placed at `(q, source(p, j))`, padding dropped (`dx` is overwritten). Engine
    /// additions only: at stride 1 with `p_stride == 1`, each window row of each offset is
    /// one addition of `ow` consecutive elements into `dx`; otherwise the offsets are split
    /// into groups in which no two windows share a position (offsets collide only when
    /// their rows and their columns differ by multiples of the stride), and each group is
    /// placed into `img` and added with one engine addition of the whole image: one pass
    /// for non-overlapping windows (pooling with stride = kernel), `ceil(k/s)^2` in
    /// general. `img` holds `dx.len()` elements.
    pub fn scatter_add<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        src: Strided<'_, E::Elem, impl Fn(usize) -> usize>,
        planes: usize,
        dx: &mut [E::Elem],
        img: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let Strided {
            data: src,
            base,
            p_stride,
            j_stride,
        } = src;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::layers::testutil::ring;
    extern crate std;
    use std::vec;

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
    pub(crate) fn scatter_reference(
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
                g.scatter_add(
                    &mut e,
                    Strided {
                        data: &src,
                        base,
                        p_stride: ps,
                        j_stride: js,
                    },
                    planes,
                    &mut got,
                    &mut img,
                )
                .unwrap();
                assert_eq!(got, want, "scatter {h}x{w} k{k} s{st} p{pad} ps{ps} js{js}");
            }
            // Every offset reading the same value (average pooling's backward).
            let src = ring(200 + t as u64, planes * pl);
            let mut want = vec![crate::Z64::ZERO; x.len()];
            scatter_reference(&g, &src, planes, |q| q * pl, 1, 0, &mut want);
            let (mut got, mut img) = (vec![crate::Z64(1); x.len()], vec![crate::Z64(1); x.len()]);
            let mut e = crate::Plain::with_frac_bits(13).unwrap();
            g.scatter_add(
                &mut e,
                Strided {
                    data: &src,
                    base: |q| q * pl,
                    p_stride: 1,
                    j_stride: 0,
                },
                planes,
                &mut got,
                &mut img,
            )
            .unwrap();
            assert_eq!(got, want, "shared scatter {h}x{w} k{k} s{st} p{pad}");
        }
    }
}
