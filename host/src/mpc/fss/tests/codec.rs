//! Key and opening bytes: round trips, and refusals of short, long and corrupt input
//! (every truncation, every trailing length tried, no panic).

use super::super::dcf::{self, DcfKey};
use super::super::gate::{self, DreluKey, ReluKey, ReluMasks, ReluShare};
use super::super::sim::{decode_opening, encode_opening};
use super::super::FssError;
use super::rng;
use crate::mpc::PartyId::{P0, P1};

fn key(n: u32, w: usize) -> DcfKey {
    let beta: Vec<u64> = (1..=w as u64).collect();
    dcf::gen_vec(3 % (1u64 << n.min(63)), &beta, n, &mut rng(10))
        .unwrap()
        .1
}

#[test]
fn round_trip_and_size() {
    for (n, w) in [(1, 1), (8, 1), (32, 1), (63, 2), (64, 1), (64, 16)] {
        let k = key(n, w);
        let b = k.to_bytes();
        assert_eq!(b.len(), DcfKey::size(n, w));
        assert_eq!(DcfKey::from_bytes(&b).unwrap(), k);
    }
    assert_eq!(DcfKey::size(64, 1), 1627);
    assert_eq!(DcfKey::size(32, 1), 827);
    // Sizes of shapes no key has are still answers, not panics.
    assert_eq!(DcfKey::size(u32::MAX, usize::MAX), usize::MAX);
    assert_eq!(DreluKey::size(0), DreluKey::size(1));
    assert!(ReluKey::size(u32::MAX) > ReluKey::size(64));
}

#[test]
fn every_truncation_is_refused_as_short() {
    for (n, w) in [(1, 1), (5, 3), (64, 1)] {
        let b = key(n, w).to_bytes();
        for len in 0..b.len() {
            match DcfKey::from_bytes(&b[..len]) {
                Err(FssError::Short { got, need, .. }) => {
                    assert_eq!(got, len);
                    assert_eq!(need, if len < 3 { 3 } else { b.len() });
                }
                other => panic!("n={n} w={w} len={len}: {other:?}"),
            }
        }
    }
}

#[test]
fn trailing_bytes_are_refused_as_long() {
    let b = key(64, 1).to_bytes();
    for extra in [1, 2, 7, 16, 25, 1000] {
        let mut long = b.clone();
        long.resize(b.len() + extra, 0);
        assert_eq!(
            DcfKey::from_bytes(&long),
            Err(FssError::Long {
                what: "DCF key",
                expected: b.len(),
                got: b.len() + extra
            })
        );
    }
}

#[test]
fn header_corruptions_are_named() {
    let b = key(8, 1).to_bytes();
    let with = |i: usize, v: u8| {
        let mut c = b.clone();
        c[i] = v;
        DcfKey::from_bytes(&c)
    };
    assert!(matches!(with(0, 0), Err(FssError::Version { got: 0, .. })));
    assert!(matches!(with(0, 2), Err(FssError::Version { got: 2, .. })));
    assert_eq!(with(1, 0), Err(FssError::InputBits { n: 0 }));
    assert_eq!(with(1, 65), Err(FssError::InputBits { n: 65 }));
    assert_eq!(with(1, 255), Err(FssError::InputBits { n: 255 }));
    assert_eq!(with(2, 0), Err(FssError::OutputWords { w: 0 }));
    assert_eq!(with(2, 17), Err(FssError::OutputWords { w: 17 }));
    // A valid but different shape: the length no longer fits.
    assert!(matches!(with(1, 9), Err(FssError::Short { .. })));
    assert!(matches!(with(1, 7), Err(FssError::Long { .. })));
    assert!(matches!(with(2, 2), Err(FssError::Short { .. })));
}

#[test]
fn control_bit_bytes_above_3_are_refused_at_every_level() {
    let (n, w) = (64u32, 1usize);
    let b = key(n, w).to_bytes();
    let per = 17 + 8 * w;
    for level in 0..n {
        let at = 19 + level as usize * per + per - 1;
        assert!(b[at] <= 3);
        for byte in [2u8, 3, 0, 1] {
            let mut c = b.clone();
            c[at] = byte;
            assert!(
                DcfKey::from_bytes(&c).is_ok(),
                "{byte} is a valid pair of bits"
            );
        }
        for byte in 4..=255u8 {
            let mut c = b.clone();
            c[at] = byte;
            assert_eq!(
                DcfKey::from_bytes(&c),
                Err(FssError::ControlBits { level, byte })
            );
        }
    }
}

#[test]
fn seeds_with_bit_0_set_are_refused() {
    let (n, w) = (16u32, 2usize);
    let b = key(n, w).to_bytes();
    let mut c = b.clone();
    c[3] |= 1;
    assert_eq!(
        DcfKey::from_bytes(&c),
        Err(FssError::SeedBit { level: None })
    );
    let per = 17 + 8 * w;
    for level in 0..n {
        let mut c = b.clone();
        c[19 + level as usize * per] |= 1;
        assert_eq!(
            DcfKey::from_bytes(&c),
            Err(FssError::SeedBit { level: Some(level) })
        );
    }
    let msg = FssError::SeedBit { level: Some(4) }.to_string();
    assert!(msg.contains("level 4"), "{msg}");
}

#[test]
fn flipped_value_bits_parse_and_break_the_result() {
    // Value words carry no redundancy: a flip parses, but the sum is then wrong.
    let mut r = rng(11);
    let (k0, k1) = dcf::gen(100, 1, 8, &mut r).unwrap();
    let mut b = k1.to_bytes();
    let leaf = b.len() - 8;
    b[leaf] ^= 0x10;
    let bad = DcfKey::from_bytes(&b).unwrap();
    let wrong = (0..256)
        .filter(|&x| {
            dcf::eval(P0, &k0, x).wrapping_add(dcf::eval(P1, &bad, x)) != u64::from(x < 100)
        })
        .count();
    assert!(wrong > 0);
}

#[test]
fn gate_keys_round_trip_and_refuse_bad_bytes() {
    let mut r = rng(12);
    for m in [2u32, 17, 64] {
        let (d0, _) = gate::drelu_gen(0x1234_5678_9abc_def0, m, &mut r).unwrap();
        let masks = ReluMasks {
            r_in: 5,
            r_out: 6,
            r_d: 7,
        };
        let (_, e1) = gate::relu_gen(masks, m, &mut r).unwrap();
        let db = d0.to_bytes();
        let eb = e1.to_bytes();
        assert_eq!(db.len(), DreluKey::size(m));
        assert_eq!(eb.len(), ReluKey::size(m));
        assert_eq!(DreluKey::from_bytes(&db).unwrap(), d0);
        assert_eq!(ReluKey::from_bytes(&eb).unwrap(), e1);
        for len in 0..db.len() {
            assert!(matches!(
                DreluKey::from_bytes(&db[..len]),
                Err(FssError::Short { .. })
            ));
        }
        for len in 0..eb.len() {
            assert!(matches!(
                ReluKey::from_bytes(&eb[..len]),
                Err(FssError::Short { .. })
            ));
        }
        let mut long = eb.clone();
        long.push(0);
        assert!(matches!(
            ReluKey::from_bytes(&long),
            Err(FssError::Long { .. })
        ));
        // One kind is not the other.
        assert!(matches!(
            ReluKey::from_bytes(&db),
            Err(FssError::Kind { got: 1, .. })
        ));
        assert!(matches!(
            DreluKey::from_bytes(&eb),
            Err(FssError::Kind { got: 2, .. })
        ));
        // Width and inner key.
        let mut c = db.clone();
        c[2] = 1;
        assert_eq!(DreluKey::from_bytes(&c), Err(FssError::GateBits { m: 1 }));
        c[2] = 65;
        assert_eq!(DreluKey::from_bytes(&c), Err(FssError::GateBits { m: 65 }));
        let mut c = db.clone();
        c[3 + 8 + 1] = 0;
        assert_eq!(DreluKey::from_bytes(&c), Err(FssError::InputBits { n: 0 }));
        let mut c = eb.clone();
        c[3 + 40 + 3] |= 1;
        assert_eq!(
            ReluKey::from_bytes(&c),
            Err(FssError::SeedBit { level: None })
        );
    }
    assert_eq!(DreluKey::size(64), 1613);
    assert_eq!(ReluKey::size(64), 2157);
}

#[test]
fn inner_dcf_of_another_shape_is_refused() {
    // A DReLU key for m = 13 carries a DCF on 12 bits with one word: 19 + 12 * 25 + 8 =
    // 327 bytes, as many as a DCF on 4 bits with 6 words (19 + 4 * 65 + 48). Spliced in,
    // the length is right and only the shape check can refuse it.
    assert_eq!(DcfKey::size(12, 1), DcfKey::size(4, 6));
    let mut r = rng(13);
    let (d0, _) = gate::drelu_gen(77, 13, &mut r).unwrap();
    let (k, _) = dcf::gen_vec(0, &[1; 6], 4, &mut r).unwrap();
    let mut b = d0.to_bytes();
    b.truncate(11);
    b.extend_from_slice(&k.to_bytes());
    assert_eq!(b.len(), DreluKey::size(13));
    assert_eq!(
        DreluKey::from_bytes(&b),
        Err(FssError::InnerShape {
            what: "DReLU key",
            n: 4,
            w: 6,
            want_n: 12,
            want_w: 1
        })
    );
}

#[test]
fn opening_frames_refuse_wrong_lengths() {
    let shares: Vec<ReluShare> = (0..5).map(|i| ReluShare { y: i, d: !i }).collect();
    let b = encode_opening(&shares);
    assert_eq!(b.len(), 80);
    assert_eq!(decode_opening(&b, 5).unwrap(), shares);
    for len in 0..b.len() {
        assert!(matches!(
            decode_opening(&b[..len], 5),
            Err(FssError::Short { .. })
        ));
    }
    let mut long = b.clone();
    long.push(1);
    assert!(matches!(
        decode_opening(&long, 5),
        Err(FssError::Long { .. })
    ));
    assert!(matches!(decode_opening(&b, 4), Err(FssError::Long { .. })));
    assert!(matches!(
        decode_opening(&b, usize::MAX),
        Err(FssError::Short { .. })
    ));
}

#[test]
fn random_bytes_never_panic() {
    use rand::RngCore;
    let mut r = rng(14);
    let base = key(8, 1).to_bytes();
    for i in 0..4000 {
        let mut b = base.clone();
        // A few random byte changes, sometimes a random length.
        for _ in 0..1 + i % 4 {
            let at = (r.next_u32() as usize) % b.len();
            b[at] = r.next_u32() as u8;
        }
        if i % 5 == 0 {
            b.truncate((r.next_u32() as usize) % (b.len() + 1));
        }
        let _ = DcfKey::from_bytes(&b);
        let _ = DreluKey::from_bytes(&b);
        let _ = ReluKey::from_bytes(&b);
    }
}
