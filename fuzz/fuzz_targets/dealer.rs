//! The dealer's side and party 1's side of the dealer protocol on arbitrary bytes: a
//! request parsed by the dealer, and replies read by party 1's feed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_host::mpc::dealer::{CorrectionFeed, Request};
use ringnn_host::mpc::dealer_server::{parse_request, DealerFeed};

mod replay;
use replay::Replay;

fuzz_target!(|data: &[u8]| {
    // Any length: short, long and every kind's parameters (a convolution triple's eight).
    let _ = parse_request(data, 0, 1 << 20);
    let mut feed = DealerFeed::over(Replay { data });
    let reqs = [
        Request::Beaver { n: 3 },
        Request::Trunc { n: 2, bits: 13 },
        Request::And { words: 1 },
    ];
    for (k, r) in reqs.into_iter().enumerate() {
        if let Ok(words) = feed.correction(r, k as u64) {
            assert_eq!(words.len(), r.correction_words());
        }
    }
});
