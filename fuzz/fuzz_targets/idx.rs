//! IDX image and label files (MNIST) from arbitrary bytes: an error or a dataset, never a
//! panic, and never an allocation beyond what the bytes hold.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringnn_host::data::idx;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.idx");
    if let Ok(images) = idx::parse_images(data, name) {
        assert_eq!(images.pixels.len(), images.count * images.rows * images.cols);
    }
    if let Ok(labels) = idx::parse_labels(data, name, 10) {
        assert!(labels.iter().all(|&l| l < 10));
    }
    // Both halves of one input as an image file and a label file.
    let (a, b) = data.split_at(data.len() / 2);
    let _ = idx::mnist_from_bytes(a, name, b, name);
});
