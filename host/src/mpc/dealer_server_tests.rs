//! The dealer process's request codec and service: round trips, refusals naming the
//! field, and arbitrary bytes that never panic.

use super::*;
use crate::mpc::dealer::Correlations;
use ringnn_core::Z64;

#[test]
fn sources_built_from_party_seeds_match_the_in_process_dealer() {
    // What the dealer process sends each party must give the material of
    // Dealer::correlations.
    let master = [9u8; 32];
    let dealer = Arc::new(Dealer::from_seed(master));
    let seeds = [PartyId::P0, PartyId::P1].map(|p| dealer.party_seed(p));
    let [mut r0, mut r1] = dealer.correlations();
    let mut s0 = SeededCorrelations::new(PartyId::P0, seeds[0], None);
    let mut s1 = SeededCorrelations::new(PartyId::P1, seeds[1], Some(dealer.feed(PartyId::P1)));
    let (a0, a1) = (r0.beaver(5).unwrap(), r1.beaver(5).unwrap());
    let (b0, b1) = (s0.beaver(5).unwrap(), s1.beaver(5).unwrap());
    assert_eq!((a0.a, a0.c, a1.a, a1.c), (b0.a, b0.c, b1.a, b1.c));
    let t = |x: &[Z64]| x.to_vec();
    assert_eq!(t(&a0.b), t(&b0.b));
}

#[test]
fn requests_round_trip_and_oversized_ones_are_refused() {
    let reqs = [
        Request::Beaver { n: 7 },
        Request::Matrix {
            dims: MatDims { m: 2, k: 3, n: 4 },
        },
        Request::Trunc { n: 5, bits: 16 },
        Request::TruncScaled {
            n: 5,
            bits: 20,
            scale: u64::MAX - 81,
            scaled_bits: 33,
        },
        Request::And { words: 3 },
        Request::Bits { words: 2 },
        Request::Drelu { n: 9, m: 64 },
        Request::Drelu { n: 1, m: 2 },
        Request::Relu { n: 9, m: 64 },
        Request::Relu { n: 1, m: 2 },
        Request::Conv {
            shape: ConvShape {
                batch: 8,
                ..LENET_CONV1
            },
            product: ConvProduct::Forward,
        },
        Request::Conv {
            shape: ConvShape {
                padding: 2,
                stride: 2,
                ..LENET_CONV1
            },
            product: ConvProduct::Weights,
        },
    ];
    for r in reqs {
        let (k, p) = encode(r);
        assert_eq!(decode(k, &p, 1 << 20), Ok(r));
    }
    assert!(decode(0, &[u64::MAX, 0, 0], 1 << 20).is_err());
    // Scaled truncation: each shift in 1..=62, four correction words per pair.
    for (p, want) in [
        ([5, 0, 33, 82], "its value shifted by 0 bits"),
        ([5, 20, 63, 82], "the scaled value shifted by 63 bits"),
    ] {
        let e = decode(13, &p, 1 << 20).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
    assert!(decode(13, &[1 << 18, 20, 33, 82], 1 << 20).is_ok());
    assert!(decode(13, &[(1 << 18) + 1, 20, 33, 82], 1 << 20).is_err());
    assert!(decode(1, &[1 << 15, 1 << 15, 1], 1 << 20).is_err());
    assert!(decode(2, &[4, 63, 0], 1 << 20).is_err());
    assert!(decode(13, &[1, 0, 0], 1 << 20).is_err());
    // Keys: width 2..=64, and their bytes within KEY_REQUEST_FRAMES frames.
    assert!(decode(5, &[1, 1, 0], 1 << 20).is_err());
    assert!(decode(5, &[1, 65, 0], 1 << 20).is_err());
    assert!(decode(5, &[u64::MAX, 64, 0], 1 << 20).is_err());
    let fit = (8 << 20) * KEY_REQUEST_FRAMES as u64 / DreluKey::size(64) as u64;
    assert!(decode(5, &[fit, 64, 0], 1 << 20).is_ok());
    assert!(decode(5, &[fit + 1, 64, 0], 1 << 20).is_err());
    assert!(decode(6, &[1, 1, 0], 1 << 20).is_err());
    assert!(decode(6, &[1, 65, 0], 1 << 20).is_err());
    let fit = (8 << 20) * KEY_REQUEST_FRAMES as u64 / ReluKey::size(64) as u64;
    assert!(decode(6, &[fit, 64, 0], 1 << 20).is_ok());
    assert!(decode(6, &[fit + 1, 64, 0], 1 << 20).is_err());
}

/// LeNet's first convolution at batch 128.
const LENET_CONV1: ConvShape = ConvShape {
    batch: 128,
    channels: 1,
    height: 28,
    width: 28,
    kernel: 5,
    stride: 1,
    padding: 0,
    out_channels: 16,
};

#[test]
fn convolution_requests_round_trip_and_short_and_long_ones_are_refused() {
    let limit = 1 << 27;
    for product in [ConvProduct::Forward, ConvProduct::Weights] {
        let req = Request::Conv {
            shape: LENET_CONV1,
            product,
        };
        let b = request_bytes(req, 4);
        assert_eq!(b.len(), REQUEST_HEAD + 64);
        assert_eq!(parse_request(&b, 4, limit), Ok(req));
        // Every shorter prefix is refused with its length, and so is one more byte.
        for cut in 0..b.len() {
            let e = parse_request(&b[..cut], 4, limit).unwrap_err();
            assert!(
                e.contains(&format!("request of {cut} bytes"))
                    || e.contains(&format!("has {cut} bytes")),
                "{e}"
            );
        }
        let mut long = b.clone();
        long.push(0);
        let e = parse_request(&long, 4, limit).unwrap_err();
        assert!(e.contains("has 74 bytes, expected 73"), "{e}");
        // The three parameters of the other kinds are a short convolution request.
        let e = parse_request(&b[..REQUEST_HEAD + 24], 4, limit).unwrap_err();
        assert!(e.contains("expected 73"), "{e}");
    }
    // A three-parameter kind with eight parameters is too long.
    let mut b = request_bytes(Request::Beaver { n: 3 }, 0);
    b.extend_from_slice(&[0u8; 40]);
    let e = parse_request(&b, 0, limit).unwrap_err();
    assert!(e.contains("has 73 bytes, expected 33"), "{e}");
}

#[test]
fn corrupt_convolution_requests_are_refused_naming_the_field() {
    let limit = 1 << 27;
    let with = |i: usize, v: u64| {
        let mut b = request_bytes(
            Request::Conv {
                shape: LENET_CONV1,
                product: ConvProduct::Weights,
            },
            0,
        );
        b[REQUEST_HEAD + 8 * i..REQUEST_HEAD + 8 * i + 8].copy_from_slice(&v.to_le_bytes());
        parse_request(&b, 0, limit)
    };
    for (i, name) in CONV_FIELDS.iter().enumerate() {
        let e = with(i, u64::MAX).unwrap_err();
        assert!(e.contains(&format!("{name} {}", u64::MAX)), "{e}");
        let e = with(i, limit as u64 + 1).unwrap_err();
        assert!(e.contains(name), "{e}");
    }
    assert!(with(4, 0).unwrap_err().contains("kernel 0"));
    assert!(with(5, 0).unwrap_err().contains("stride 0"));
    let e = with(2, 4).unwrap_err();
    assert!(e.contains("height 4 with padding 0"), "{e}");
    let e = with(3, 4).unwrap_err();
    assert!(e.contains("width 4 with padding 0"), "{e}");
    // Sizes within the limit one by one, too large together.
    let e = with(0, 1 << 20).unwrap_err();
    assert!(e.contains("the image is over"), "{e}");
    let e = with(7, 1 << 23).unwrap_err();
    assert!(e.contains("the kernel matrix is over"), "{e}");
    let e = with(1, 1 << 8).unwrap_err();
    assert!(e.contains("the unfolded image is over"), "{e}");
    let e = with(7, 1 << 16).unwrap_err();
    assert!(e.contains("the output matrix is over"), "{e}");
    // Kind 14 does not exist, whatever follows.
    let mut b = request_bytes(Request::Beaver { n: 1 }, 0);
    b[8] = 14;
    assert!(parse_request(&b, 0, limit)
        .unwrap_err()
        .contains("unknown request kind 14"));
    // A counter out of order is refused before the fields are read.
    let b = request_bytes(
        Request::Conv {
            shape: LENET_CONV1,
            product: ConvProduct::Forward,
        },
        3,
    );
    assert!(parse_request(&b, 2, limit)
        .unwrap_err()
        .contains("request number 3, expected 2"));
}

#[test]
fn random_request_bytes_never_panic_and_accepted_shapes_can_be_served() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(77);
    for _ in 0..20_000 {
        let len = rng.random_range(0..90);
        let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if len > 8 {
            b[8] = rng.random_range(0..15);
        }
        let _ = parse_request(
            &b,
            u64::from_le_bytes([b.first().copied().unwrap_or(0), 0, 0, 0, 0, 0, 0, 0]),
            1 << 20,
        );
    }
    // Small fields of every value: what is accepted is a shape the dealer serves.
    let dealer = Dealer::from_seed([3; 32]);
    let mut served = 0;
    for i in 0..4_000u64 {
        let kind = 7 + (i % 2) as u8;
        let f: Vec<u64> = (0..8).map(|_| rng.random_range(0..7)).collect();
        let mut b = i.to_le_bytes().to_vec();
        b.push(kind);
        f.iter().for_each(|w| b.extend_from_slice(&w.to_le_bytes()));
        if let Ok(req) = parse_request(&b, i, 1 << 20) {
            let c = dealer.correction(req, i);
            assert_eq!(c.len(), req.correction_words());
            served += 1;
        }
    }
    assert!(served > 100, "only {served} random shapes were valid");
}

/// The mlp's second layer at batch 128, its forward triple 5 requests earlier.
const DENSE: Request = Request::DenseBackward {
    dims: MatDims {
        m: 128,
        k: 128,
        n: 10,
    },
    back: 5,
    dx: true,
};

#[test]
fn dense_backward_requests_round_trip_and_bad_ones_are_refused_naming_the_field() {
    let limit = 1 << 20;
    for dx in [true, false] {
        let req = Request::DenseBackward {
            dims: MatDims { m: 3, k: 4, n: 2 },
            back: 7,
            dx,
        };
        let b = request_bytes(req, 7);
        assert_eq!(b.len(), REQUEST_HEAD + 32);
        assert_eq!(b[8], if dx { 9 } else { 10 });
        assert_eq!(parse_request(&b, 7, limit), Ok(req));
        for cut in 0..b.len() {
            assert!(parse_request(&b[..cut], 7, limit).is_err(), "{cut} bytes");
        }
        let mut long = b.clone();
        long.push(0);
        let e = parse_request(&long, 7, limit).unwrap_err();
        assert!(e.contains("has 42 bytes, expected 41"), "{e}");
    }
    // Each field over the limit is named, and so is a back of 0.
    let with = |i: usize, v: u64, counter: u64| {
        let mut b = request_bytes(DENSE, counter);
        b[REQUEST_HEAD + 8 * i..REQUEST_HEAD + 8 * i + 8].copy_from_slice(&v.to_le_bytes());
        parse_request(&b, counter, limit)
    };
    for (i, name) in DENSE_FIELDS.iter().enumerate() {
        let e = with(i, u64::MAX, 9).unwrap_err();
        assert!(e.contains(&format!("{name} {}", u64::MAX)), "{e}");
    }
    assert!(with(3, 0, 9).unwrap_err().contains("back 0"));
    // Within the limit one by one, too large together.
    let e = with(1, 1 << 14, 9).unwrap_err();
    assert!(e.contains("m x k is over"), "{e}");
    let e = with(2, 1 << 14, 9).unwrap_err();
    assert!(e.contains("k x n is over"), "{e}");
    // A request that refers to before the first request.
    assert_eq!(parse_request(&request_bytes(DENSE, 5), 5, limit), Ok(DENSE));
    let e = parse_request(&request_bytes(DENSE, 4), 4, limit).unwrap_err();
    assert!(e.contains("refers 5 requests back (allowed 1 to 4)"), "{e}");
    // Party 0 expands them from its seed.
    let e = parse_request_of(PartyId::P0, &request_bytes(DENSE, 5), 0, limit).unwrap_err();
    assert!(e.contains("expands from its seed"), "{e}");
    // What is accepted can be served.
    let dealer = Dealer::from_seed([4; 32]);
    let c = dealer.correction(DENSE, 5);
    assert_eq!(c.len(), DENSE.correction_words());
    assert_eq!(c.len(), 128 * 10 + 128 * 128);
}

#[test]
fn convolution_backward_requests_round_trip_and_bad_ones_are_refused() {
    let limit = 1 << 27;
    for dx in [true, false] {
        let req = Request::ConvBackward {
            shape: LENET_CONV1,
            back: 3,
            dx,
        };
        let b = request_bytes(req, 9);
        assert_eq!(b.len(), REQUEST_HEAD + 72);
        assert_eq!(b[8], if dx { 11 } else { 12 });
        assert_eq!(parse_request(&b, 9, limit), Ok(req));
        for cut in 0..b.len() {
            assert!(parse_request(&b[..cut], 9, limit).is_err(), "{cut} bytes");
        }
        let mut long = b.clone();
        long.push(0);
        let e = parse_request(&long, 9, limit).unwrap_err();
        assert!(e.contains("has 82 bytes, expected 81"), "{e}");
    }
    let with = |i: usize, v: u64, counter: u64| {
        let req = Request::ConvBackward {
            shape: LENET_CONV1,
            back: 3,
            dx: true,
        };
        let mut b = request_bytes(req, counter);
        b[REQUEST_HEAD + 8 * i..REQUEST_HEAD + 8 * i + 8].copy_from_slice(&v.to_le_bytes());
        parse_request(&b, counter, limit)
    };
    // The shape's fields as a convolution triple's, then `back`.
    for (i, name) in CONV_FIELDS.iter().enumerate() {
        let e = with(i, u64::MAX, 9).unwrap_err();
        assert!(e.contains(&format!("{name} {}", u64::MAX)), "{e}");
    }
    assert!(with(4, 0, 9).unwrap_err().contains("kernel 0"));
    let e = with(8, 0, 9).unwrap_err();
    assert!(e.contains("convolution backward request: back 0"), "{e}");
    let e = with(8, u64::MAX, 9).unwrap_err();
    assert!(e.contains(&format!("back {}", u64::MAX)), "{e}");
    let e = with(8, 10, 9).unwrap_err();
    assert!(
        e.contains("refers 10 requests back (allowed 1 to 9)"),
        "{e}"
    );
    // What is accepted can be served.
    let small = Request::ConvBackward {
        shape: ConvShape {
            batch: 2,
            ..LENET_CONV1
        },
        back: 2,
        dx: true,
    };
    let dealer = Dealer::from_seed([5; 32]);
    let c = dealer.correction(small, 4);
    assert_eq!(c.len(), small.correction_words());
    assert_eq!(c.len(), 16 * 25 + 25 * 2 * 576);
}

#[test]
fn party_zero_asks_for_keys_only_and_never_for_a_counter_twice() {
    let (req, k) = (Request::Drelu { n: 2, m: 64 }, 7u64);
    let wire = request_bytes;
    let p0 = |b: &[u8], next| parse_request_of(PartyId::P0, b, next, 1 << 20);
    assert_eq!(p0(&wire(req, k), 3), Ok((req, k)));
    assert_eq!(p0(&wire(req, k), 7), Ok((req, k)));
    // The counter after the last one served: an earlier (or the same) one is refused.
    assert!(p0(&wire(req, k), 8).unwrap_err().contains("at least 8"));
    let e = p0(&wire(Request::Beaver { n: 2 }, k), 0).unwrap_err();
    assert!(e.contains("expands from its seed"), "{e}");
    // Party 1: exactly the next counter, any kind.
    let p1 = |b: &[u8], next| parse_request_of(PartyId::P1, b, next, 1 << 20);
    assert_eq!(p1(&wire(req, k), 7), Ok((req, k)));
    assert!(p1(&wire(req, k), 3).is_err());
}
