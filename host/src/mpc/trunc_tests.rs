//! Truncation on two servers against exact division: the dealer's ([`protocols::
//! truncate_dealer`]) over the whole safe range and without bias, SecureML's local one
//! for small values, and the scaled pair that gives an SGD step's velocity and weight
//! change from one opening ([`protocols::truncate_dealer_scaled`]).

use super::tests::{assert_within, both, config, diff, measure, on_mpc, Case, Outputs};
use super::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ringnn_core::{Engine, Z64};

struct Shift(u32);
impl Case for Shift {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let mut v = x[0].clone();
        e.shift_right(&mut v, self.0)?;
        Ok(vec![v])
    }
}

/// Values spread over every magnitude of the safe range `[-2^62, 2^62)`, with the ends.
fn safe_range_values(rng: &mut ChaCha20Rng, n: usize) -> Vec<Z64> {
    let mut v: Vec<Z64> = (0..n)
        .map(|_| {
            let bits = rng.random_range(0..=62u32);
            let mag = if bits == 0 {
                0
            } else {
                rng.next_u64() >> (64 - bits)
            };
            let s = mag as i64;
            Z64::from_signed(if rng.random::<bool>() { -s } else { s })
        })
        .collect();
    v.extend([
        Z64::from_signed(-(1 << 62)),
        Z64::from_signed((1 << 62) - 1),
        Z64::ZERO,
        Z64::from_signed(-1),
        Z64::from_signed(1),
    ]);
    v
}

#[test]
fn dealer_truncation_is_floor_or_one_more() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let x = safe_range_values(&mut rng, 4000);
    for bits in [1, 2, 8, 16, 31, 40, 58, 61, 62] {
        let (p, m) = both(&Shift(bits), std::slice::from_ref(&x));
        for i in 0..x.len() {
            let d = diff(m[0][i], x[i].shr_arith(bits));
            assert!(
                d == 0 || d == 1,
                "x = {} >> {bits}: off by {d}",
                x[i].to_signed()
            );
        }
        assert_within(&p[0], &m[0], |_| 1, "shift_right");
    }
    // Shifts by 63 or more round every safe-range value to 0, as Plain does.
    for bits in [63, 64, 100] {
        let (p, m) = both(&Shift(bits), std::slice::from_ref(&x));
        assert_eq!(p, m);
    }
}

#[test]
fn dealer_truncation_rounds_stochastically_without_bias() {
    // x = 4k + 1 truncated by 2 bits: one more than floor with probability 1/4.
    let n = 40_000;
    let x = vec![Z64::from_signed(4 * 12345 + 1); n];
    let m = on_mpc(&config(8), &Shift(2), &[x]);
    let ups = m[0].iter().filter(|&&v| v.to_signed() == 12346).count();
    assert_eq!(
        ups + m[0].iter().filter(|&&v| v.to_signed() == 12345).count(),
        n
    );
    let p = ups as f64 / n as f64;
    let sigma = (0.25f64 * 0.75 / n as f64).sqrt();
    assert!((p - 0.25).abs() < 6.0 * sigma, "rounded up {p}");
}

#[test]
fn local_truncation_is_floor_or_one_more_for_small_values() {
    // Fails with probability |x| / 2^64 per element: below 2^-24 here.
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let x: Vec<Z64> = (0..4000)
        .map(|_| Z64::from_signed(rng.random_range(-(1i64 << 40)..(1i64 << 40))))
        .collect();
    let cfg = LocalConfig {
        truncation: Truncation::Local,
        ..config(9)
    };
    for bits in [1, 16, 32] {
        let m = on_mpc(&cfg, &Shift(bits), std::slice::from_ref(&x));
        for i in 0..x.len() {
            let d = diff(m[0][i], x[i].shr_arith(bits));
            assert!(d == 0 || d == 1, "local >> {bits}: off by {d}");
        }
    }
}

/// `x >> bits` and `(scale x) >> scaled_bits` through [`Engine::shift_right_and_scaled`].
struct ShiftScaled(u32, Z64, u32);
impl Case for ShiftScaled {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let mut v = x[0].clone();
        let mut s = vec![Z64::ZERO; v.len()];
        e.shift_right_and_scaled(&mut v, self.0, self.1, &mut s, self.2)?;
        Ok(vec![v, s])
    }
}

#[test]
fn scaled_truncation_gives_both_floors_or_one_more_from_one_opening() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let base = safe_range_values(&mut rng, 3000);
    // Scales: the SGD step's lr at f = 13 and 16 (82, 655: even and odd), 0, 1, -1, a
    // power of two, a negative and a large one.
    for (scale, bits, sbits) in [
        (82i64, 20u32, 33u32),
        (655, 23, 39),
        (0, 5, 7),
        (1, 1, 1),
        (-1, 62, 62),
        (1 << 13, 16, 32),
        (-12345, 8, 40),
        (1 << 40, 30, 61),
    ] {
        // Every x with scale x in the safe range: the base values divided by |scale|.
        let d = scale.unsigned_abs().max(1);
        let x: Vec<Z64> = base
            .iter()
            .map(|v| Z64::from_signed(v.to_signed() / d as i64))
            .collect();
        let c = Z64::from_signed(scale);
        let (p, m) = both(&ShiftScaled(bits, c, sbits), std::slice::from_ref(&x));
        for i in 0..x.len() {
            let xi = i128::from(x[i].to_signed());
            let want = [(xi >> bits), (i128::from(scale) * xi) >> sbits];
            for (k, what) in [(0, "x"), (1, "scale x")] {
                let got = i128::from(m[k][i].to_signed());
                let off = got - want[k];
                assert!(
                    off == 0 || off == 1,
                    "{what} for x = {xi}, scale {scale}, shifts {bits}/{sbits}: off by {off}"
                );
            }
        }
        assert_within(&p[0], &m[0], |_| 1, "x >> bits");
        assert_within(&p[1], &m[1], |_| 1, "(scale x) >> scaled_bits");
    }
}

#[test]
fn scaled_truncation_opens_once() {
    // One round and one 8-byte word per element (plus the frame's 8-byte header), as a
    // plain truncation; party 1 receives four correction words per element.
    let n = 1000;
    let (t, off) = measure(&ShiftScaled(13, Z64(82), 26), n);
    assert_eq!((t.rounds, t.sent), (1, 8 * n as u64 + 8), "{t:?}");
    assert_eq!(off.bytes, 32 + 32 * n as u64);
    let (t, off) = measure(&Shift(13), n);
    assert_eq!((t.rounds, t.sent), (1, 8 * n as u64 + 8), "{t:?}");
    assert_eq!(off.bytes, 32 + 16 * n as u64);
}
