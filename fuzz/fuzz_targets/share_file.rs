//! Share files (the owner's shares and the servers' outputs) from arbitrary bytes, as
//! they are and with a valid CRC-32 appended (to reach the parsing behind it).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_host::files::crc32;
use ringnn_host::mpc::server::parse_shares;

fn check(bytes: &[u8]) {
    if let Ok(t) = parse_shares(bytes) {
        let words: usize = t.iter().map(Vec::len).sum();
        assert_eq!(bytes.len(), 16 + 8 * (t.len() + words));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32(data).to_le_bytes());
    check(&sealed);
});
