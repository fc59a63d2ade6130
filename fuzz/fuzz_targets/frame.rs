//! Protocol frames from a peer that sends arbitrary bytes: the two-party engine runs a
//! product, a comparison and a matrix product against them and must fail with an error
//! (out of step, closed), never panic or allocate what a header claims.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_core::engine::MatDims;
use ringnn_core::fixed::FracBits;
use ringnn_core::{Engine, Z64};
use ringnn_host::mpc::{Dealer, Mpc, PartyId};
use std::sync::Arc;

mod replay;
use replay::Replay;

fuzz_target!(|data: &[u8]| {
    let dealer = Arc::new(Dealer::from_seed([1; 32]));
    let [c0, _] = dealer.correlations();
    let f = FracBits::new(13).unwrap();
    let mut e = Mpc::new(PartyId::P0, f, Replay { data }, c0);
    let x = vec![Z64(5); 4];
    let mut out = vec![Z64::ZERO; 4];
    let _ = e.mul(&x, &x, &mut out);
    let mut s = vec![Z64::ZERO; 12];
    let mut r = x.clone();
    let _ = e.relu(&mut r, &mut s);
    let d = MatDims { m: 2, k: 2, n: 2 };
    let _ = e.matmul(&x, &x, d, &mut out);
});
