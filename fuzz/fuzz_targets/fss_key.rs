//! FSS keys and the ReLU opening from arbitrary bytes (as the dealer's stream or the peer
//! would deliver them): every parser must refuse with an error or accept a key that writes
//! back to the same bytes and evaluates without panicking. Random bytes rarely have a
//! key's exact length, so the input is also laid out as a DCF key of the shape its first
//! bytes name (the rest of the data repeated to fill it), once as it is (mostly refused
//! for a seed or control byte) and once with those fields made valid (must parse).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_host::mpc::fss::{self, codec, sim, DcfKey, DreluKey, ReluKey};
use ringnn_host::mpc::PartyId;

fn check_dcf(bytes: &[u8], x: u64) -> bool {
    match DcfKey::from_bytes(bytes) {
        Ok(k) => {
            assert_eq!(k.to_bytes(), bytes);
            for p in PartyId::BOTH {
                let _ = fss::eval_vec(p, &k, x);
                let _ = fss::eval_many(p, &k, &[x, !x, 0]);
            }
            true
        }
        Err(_) => false,
    }
}

/// `[version, n, w]` and `data` repeated to the length a key of that shape has.
fn shaped(data: &[u8]) -> Option<Vec<u8>> {
    let (&a, rest) = data.split_first()?;
    let (&b, rest) = rest.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let (n, w) = (1 + u32::from(a) % 64, 1 + usize::from(b) % 16);
    let mut key = vec![codec::VERSION, n as u8, w as u8];
    key.extend(rest.iter().cycle().take(DcfKey::size(n, w) - 3));
    Some(key)
}

/// Clears every seed's bit 0 and keeps two bits of every control byte.
fn make_valid(key: &mut [u8]) {
    let (n, w) = (usize::from(key[1]), usize::from(key[2]));
    key[3] &= !1;
    let per = 17 + 8 * w;
    for level in 0..n {
        key[19 + level * per] &= !1;
        key[19 + level * per + per - 1] &= 3;
    }
}

fuzz_target!(|data: &[u8]| {
    let x = data
        .iter()
        .fold(0u64, |a, &b| a.rotate_left(8) ^ u64::from(b));
    check_dcf(data, x);
    if let Ok(k) = DreluKey::from_bytes(data) {
        assert_eq!(k.to_bytes(), data);
        let _ = fss::drelu_eval(PartyId::P0, &k, x);
    }
    if let Ok(k) = ReluKey::from_bytes(data) {
        assert_eq!(k.to_bytes(), data);
        let _ = fss::relu_eval(PartyId::P1, &k, x);
        let _ = fss::relu_eval_many(PartyId::P1, &[k], &[x, x]);
    }
    if let Some(mut key) = shaped(data) {
        check_dcf(&key, x);
        make_valid(&mut key);
        assert!(check_dcf(&key, x), "a well-formed key was refused");
    }
    let _ = sim::decode_opening(data, data.len() / 16);
    let _ = sim::decode_opening(data, usize::from(data.first().copied().unwrap_or(0)));
});
