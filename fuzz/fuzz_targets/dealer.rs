//! The dealer's side and party 1's side of the dealer protocol on arbitrary bytes: a
//! request parsed by the dealer, and replies read by party 1's feed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_host::mpc::dealer::{CorrectionFeed, Request};
use ringnn_host::mpc::dealer_server::{parse_request, DealerFeed, REQUEST_LEN};
use ringnn_host::mpc::Channel;
use std::io;

struct Replay<'a> {
    data: &'a [u8],
}

impl Channel for Replay<'_> {
    fn write_all(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() > self.data.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of input"));
        }
        let (head, rest) = self.data.split_at(buf.len());
        buf.copy_from_slice(head);
        self.data = rest;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() >= REQUEST_LEN {
        let mut b = [0u8; REQUEST_LEN];
        b.copy_from_slice(&data[..REQUEST_LEN]);
        let _ = parse_request(&b, 0, 1 << 20);
    }
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
