//! CIFAR-10 and CIFAR-100 binary files from arbitrary bytes: as they are, and padded
//! with zeros to whole records (3,073 and 3,074 bytes), so that the fuzzer reaches the
//! record parsing behind the length check.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_host::data::cifar::{parse_cifar10, parse_cifar100};
use ringnn_host::data::Cifar100Labels;
use std::path::Path;

fn whole_records(data: &[u8], record: usize) -> Vec<u8> {
    let mut b = data.to_vec();
    b.resize(data.len().div_ceil(record).max(1) * record, 0);
    b
}

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.bin");
    for bytes in [data.to_vec(), whole_records(data, 3073)] {
        if let Ok(d) = parse_cifar10(&bytes, name) {
            assert_eq!(d.images.len(), d.len() * 3 * 32 * 32);
            assert!(d.labels.iter().all(|&l| l < 10));
        }
    }
    for bytes in [data.to_vec(), whole_records(data, 3074)] {
        let _ = parse_cifar100(&bytes, name, Cifar100Labels::Fine);
        let _ = parse_cifar100(&bytes, name, Cifar100Labels::Coarse);
    }
});
