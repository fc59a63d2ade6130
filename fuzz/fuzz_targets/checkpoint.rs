//! Checkpoints from arbitrary bytes: verified or refused, and what verifies encodes back
//! to the same tensors. Each input is tried as it is and with a valid checksum appended,
//! so that the fuzzer reaches the header and tensor parsing behind the checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_host::train::checkpoint;
use std::path::Path;

fn check(bytes: &[u8]) {
    if let Ok((h, st)) = checkpoint::decode(bytes, Path::new("fuzz.bin")) {
        assert_eq!(st.params.len(), h.n_params);
        assert_eq!(st.velocity.len(), h.n_params);
        assert_eq!(st.buffers.len(), h.n_buffers);
        let again = checkpoint::encode(&h, &st);
        let (h2, st2) = checkpoint::decode(&again, Path::new("again.bin")).unwrap();
        assert_eq!((h2, st2), (h, st));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&ringnn_host::files::crc32(data).to_le_bytes());
    check(&sealed);
});
