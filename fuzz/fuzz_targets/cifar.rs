//! CIFAR-10 and CIFAR-100 binary files from arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_host::data::cifar::{parse_cifar10, parse_cifar100};
use ringnn_host::data::Cifar100Labels;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.bin");
    if let Ok(d) = parse_cifar10(data, name) {
        assert_eq!(d.images.len(), d.len() * 3 * 32 * 32);
    }
    let _ = parse_cifar100(data, name, Cifar100Labels::Fine);
    let _ = parse_cifar100(data, name, Cifar100Labels::Coarse);
});
