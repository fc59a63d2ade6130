//! CIFAR-10 and CIFAR-100 in their binary formats (Krizhevsky, "Learning Multiple Layers
//! of Features from Tiny Images", 2009), and the crop-and-flip augmentation that CIFAR
//! training customarily uses.
//!
//! A CIFAR-10 record is 3073 bytes: the label (0..10), then 1024 red, 1024 green and 1024
//! blue bytes of a 32 x 32 image, row-major, which is already the C x H x W layout of a
//! [`Dataset`]. A CIFAR-100 record is 3074 bytes: the coarse label (0..20), the fine label
//! (0..100), then the same 3072 pixel bytes. Files hold records back to back, with no
//! header, so a file whose length is not a whole number of records is truncated.
//!
//! A CIFAR-10 folder may use the official names (`data_batch_1.bin` ... and
//! `test_batch.bin`) or any names starting `train_` and `test_` (as `cifar10-exact/` in
//! the shared data does); training files are read in name order. CIFAR-100 is `train.bin`
//! and `test.bin`.

use super::{candidate_dirs, find_file, read_file, truncated, DataError, Dataset, Shape, Split};
use rand::Rng;
use std::path::{Path, PathBuf};

/// The shape of a CIFAR image.
pub const CIFAR_SHAPE: Shape = Shape {
    channels: 3,
    height: 32,
    width: 32,
};
/// Bytes of pixels in one record.
const PIXELS: usize = 3072;

/// The CIFAR-10 class names, in label order (as in the official `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which CIFAR-100 label to learn.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cifar100Labels {
    /// The 20 superclasses (first byte of a record).
    Coarse,
    /// The 100 classes (second byte of a record).
    Fine,
}

impl Cifar100Labels {
    fn index(self) -> usize {
        match self {
            Cifar100Labels::Coarse => 0,
            Cifar100Labels::Fine => 1,
        }
    }

    fn classes(self) -> u32 {
        match self {
            Cifar100Labels::Coarse => 20,
            Cifar100Labels::Fine => 100,
        }
    }

    fn names_file(self) -> &'static str {
        match self {
            Cifar100Labels::Coarse => "coarse_label_names.txt",
            Cifar100Labels::Fine => "fine_label_names.txt",
        }
    }
}

/// Records of `label_bytes` label bytes then 3072 pixels; the label learned is byte
/// `label_index`, and every label byte is checked against its own class count.
fn parse_records(
    bytes: &[u8],
    name: &Path,
    label_classes: &[u32],
    label_index: usize,
) -> Result<(Vec<u8>, Vec<f32>), DataError> {
    let record = label_classes.len() + PIXELS;
    let whole = bytes.len() / record * record;
    if whole != bytes.len() {
        return Err(truncated(name, whole, whole + record, bytes.len()));
    }
    let n = bytes.len() / record;
    let mut labels = Vec::with_capacity(n);
    let mut images = Vec::with_capacity(n * PIXELS);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let (head, pixels) = rec.split_at(label_classes.len());
        for (j, (&label, &classes)) in head.iter().zip(label_classes).enumerate() {
            if u32::from(label) >= classes {
                return Err(DataError::LabelOutOfRange {
                    path: name.to_path_buf(),
                    offset: (i * record + j) as u64,
                    label: u32::from(label),
                    classes,
                });
            }
        }
        labels.push(head[label_index]);
        images.extend(pixels.iter().map(|&p| f32::from(p) / 255.0));
    }
    Ok((labels, images))
}

/// A CIFAR-10 dataset from the bytes of one batch file, pixels scaled to [0, 1].
pub fn parse_cifar10(bytes: &[u8], name: &Path) -> Result<Dataset, DataError> {
    let (labels, images) = parse_records(bytes, name, &[10], 0)?;
    Ok(Dataset {
        name: name.display().to_string(),
        images,
        labels,
        shape: CIFAR_SHAPE,
        classes: 10,
        class_names: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    })
}

/// A CIFAR-100 dataset from the bytes of `train.bin` or `test.bin`, pixels scaled to
/// [0, 1], with the coarse or fine labels; class names are the label numbers.
pub fn parse_cifar100(
    bytes: &[u8],
    name: &Path,
    which: Cifar100Labels,
) -> Result<Dataset, DataError> {
    let (labels, images) = parse_records(bytes, name, &[20, 100], which.index())?;
    Ok(Dataset {
        name: name.display().to_string(),
        images,
        labels,
        shape: CIFAR_SHAPE,
        classes: which.classes() as usize,
        class_names: (0..which.classes()).map(|c| c.to_string()).collect(),
    })
}

/// Joins datasets of one kind, naming the result after the first.
fn concat(parts: Vec<Dataset>) -> Option<Dataset> {
    let mut parts = parts.into_iter();
    let mut all = parts.next()?;
    for p in parts {
        all.images.extend_from_slice(&p.images);
        all.labels.extend_from_slice(&p.labels);
        all.name.push_str(" + ");
        all.name.push_str(&p.name);
    }
    Some(all)
}

/// The training and the test batch files of a CIFAR-10 folder.
type BatchFiles = (Vec<PathBuf>, Vec<PathBuf>);

/// The train and test batch files of a CIFAR-10 folder, in name order; `X` is preferred
/// to `X.gz` when both exist, so that no batch is read twice.
fn scan_cifar10(dir: &Path) -> Result<Option<BatchFiles>, DataError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DataError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut train: Vec<(String, PathBuf)> = Vec::new();
    let mut test: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let base = file.strip_suffix(".gz").unwrap_or(file).to_string();
        if !base.ends_with(".bin") || !path.is_file() {
            continue;
        }
        let list = if base.starts_with("data_batch_") || base.starts_with("train_") {
            &mut train
        } else if base.starts_with("test_") {
            &mut test
        } else {
            continue;
        };
        match list.iter_mut().find(|(b, _)| *b == base) {
            Some(existing) if file == base => existing.1 = path,
            Some(_) => {}
            None => list.push((base, path)),
        }
    }
    if train.is_empty() || test.is_empty() {
        return Ok(None);
    }
    train.sort();
    test.sort();
    let paths = |v: Vec<(String, PathBuf)>| v.into_iter().map(|(_, p)| p).collect();
    Ok(Some((paths(train), paths(test))))
}

/// Reads `batches.meta.txt` if present: the class names, one a line.
fn cifar10_class_names(dir: &Path) -> Result<Option<Vec<String>>, DataError> {
    class_names(&dir.join("batches.meta.txt"), 10)
}

/// Class names from a text file of one name a line, if the file exists; blank lines (the
/// official files end with some) are skipped.
fn class_names(path: &Path, classes: usize) -> Result<Option<Vec<String>>, DataError> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| DataError::BadUtf8 {
        path: path.to_path_buf(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64,
        offset: e.valid_up_to() as u64,
    })?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != classes {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            line: 1,
            offset: 0,
            what: format!("{} class names, expected {classes}", names.len()),
        });
    }
    Ok(Some(names))
}

/// CIFAR-10 from `dir` (or its `cifar10/` or `cifar-10-batches-bin/` subfolder): every
/// training batch (`data_batch_*.bin` or `train_*.bin`) joined in name order, and the test
/// batch (`test_batch.bin` or `test_*.bin`), each raw or `.gz`. Pixels are scaled to
/// [0, 1]; class names come from `batches.meta.txt` when present.
pub fn load_cifar10(dir: &Path) -> Result<Split, DataError> {
    let dirs = candidate_dirs(dir, &["cifar10", "cifar-10-batches-bin"]);
    for d in &dirs {
        let Some((train_paths, test_paths)) = scan_cifar10(d)? else {
            continue;
        };
        let load = |paths: &[PathBuf]| -> Result<Option<Dataset>, DataError> {
            let mut parts = Vec::with_capacity(paths.len());
            for p in paths {
                parts.push(parse_cifar10(&read_file(p)?, p)?);
            }
            Ok(concat(parts))
        };
        let (Some(mut train), Some(mut test)) = (load(&train_paths)?, load(&test_paths)?) else {
            continue;
        };
        if let Some(names) = cifar10_class_names(d)? {
            train.class_names = names.clone();
            test.class_names = names;
        }
        return Ok(Split { train, test });
    }
    let mut tried = Vec::new();
    for d in &dirs {
        tried.push(d.join("data_batch_*.bin[.gz]"));
        tried.push(d.join("train_*.bin[.gz]"));
        tried.push(d.join("test_*.bin[.gz]"));
    }
    Err(DataError::Missing {
        what: "CIFAR-10 training and test batches".to_string(),
        tried,
    })
}

/// CIFAR-100 from `dir` (or its `cifar100/` or `cifar-100-binary/` subfolder):
/// `train.bin` and `test.bin`, raw or `.gz`, with the chosen labels. Pixels are scaled to
/// [0, 1]; class names come from `fine_label_names.txt` or `coarse_label_names.txt` when
/// present.
pub fn load_cifar100(dir: &Path, which: Cifar100Labels) -> Result<Split, DataError> {
    let dirs = candidate_dirs(dir, &["cifar100", "cifar-100-binary"]);
    let train_path = find_file(&dirs, &["train.bin"], "CIFAR-100 training data")?;
    let test_path = find_file(&dirs, &["test.bin"], "CIFAR-100 test data")?;
    let mut train = parse_cifar100(&read_file(&train_path)?, &train_path, which)?;
    let mut test = parse_cifar100(&read_file(&test_path)?, &test_path, which)?;
    if let Some(folder) = train_path.parent() {
        let names_path = folder.join(which.names_file());
        if let Some(names) = class_names(&names_path, which.classes() as usize)? {
            train.class_names = names.clone();
            test.class_names = names;
        }
    }
    Ok(Split { train, test })
}

/// One image cropped from its zero-padded copy and optionally mirrored.
///
/// The image is padded with `pad` zeros on every side; the window of the original size at
/// row `dy`, column `dx` of the padded image (each in `0..=2 * pad`) is copied to `out`,
/// mirrored left-right if `flip`. `dy = dx = pad` without flip is the identity.
///
/// # Panics
/// If `image` or `out` is not `shape.len()` long, or `dy` or `dx` exceeds `2 * pad`.
pub fn crop_flip<T: Copy + Default>(
    image: &[T],
    shape: Shape,
    pad: usize,
    dy: usize,
    dx: usize,
    flip: bool,
    out: &mut [T],
) {
    assert_eq!(image.len(), shape.len(), "image length");
    assert_eq!(out.len(), shape.len(), "output length");
    assert!(
        dy <= 2 * pad && dx <= 2 * pad,
        "crop offset beyond the padding"
    );
    let (h, w) = (shape.height, shape.width);
    for c in 0..shape.channels {
        let src = &image[c * h * w..(c + 1) * h * w];
        let dst = &mut out[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            // Row y of the window is row y + dy of the padded image, y + dy - pad of src.
            let sy = (y + dy).checked_sub(pad).filter(|&sy| sy < h);
            for x in 0..w {
                let wx = if flip { w - 1 - x } else { x };
                let sx = (wx + dx).checked_sub(pad).filter(|&sx| sx < w);
                dst[y * w + x] = match (sy, sx) {
                    (Some(sy), Some(sx)) => src[sy * w + sx],
                    _ => T::default(),
                };
            }
        }
    }
}

/// The usual CIFAR augmentation, in place on a batch: each image is shifted by a random
/// crop of its `pad`-zero-padded copy (offsets uniform in `0..=2 * pad`) and mirrored
/// left-right with probability 1/2, all drawn from `rng`, so a seeded generator gives the
/// same batch every run.
///
/// Padding is zero in whatever space the images are in: after [`super::normalise`] that
/// is the channel mean, the customary choice for normalised inputs.
///
/// # Panics
/// If `images.len()` is not a multiple of `shape.len()`.
pub fn random_crop_flip<T: Copy + Default, R: Rng + ?Sized>(
    images: &mut [T],
    shape: Shape,
    rng: &mut R,
    pad: usize,
) {
    let n = shape.len();
    if n == 0 {
        return;
    }
    assert_eq!(images.len() % n, 0, "batch length is not whole images");
    let mut scratch = vec![T::default(); n];
    for image in images.chunks_exact_mut(n) {
        let dy = rng.random_range(0..=2 * pad);
        let dx = rng.random_range(0..=2 * pad);
        let flip = rng.random_bool(0.5);
        crop_flip(image, shape, pad, dy, dx, flip, &mut scratch);
        image.copy_from_slice(&scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(fill, PIXELS));
        r
    }

    #[test]
    fn parses_records_in_chw_order() {
        let mut bytes = record(3, 0);
        bytes[1 + 1024] = 255; // first green pixel
        bytes.extend(record(9, 51));
        let d = parse_cifar10(&bytes, Path::new("b.bin")).unwrap();
        assert_eq!(d.labels, vec![3, 9]);
        assert_eq!(d.len(), 2);
        assert_eq!(d.image(0)[1024], 1.0);
        assert_eq!(d.image(0)[0], 0.0);
        assert_eq!(d.image(1)[3071], 0.2);
        assert_eq!(d.class_names[3], "cat");
    }

    #[test]
    fn cifar100_picks_coarse_or_fine() {
        let mut bytes = vec![19, 99];
        bytes.extend(std::iter::repeat_n(7, PIXELS));
        let fine = parse_cifar100(&bytes, Path::new("t"), Cifar100Labels::Fine).unwrap();
        assert_eq!((fine.labels[0], fine.classes), (99, 100));
        let coarse = parse_cifar100(&bytes, Path::new("t"), Cifar100Labels::Coarse).unwrap();
        assert_eq!((coarse.labels[0], coarse.classes), (19, 20));
        bytes[0] = 20;
        let e = parse_cifar100(&bytes, Path::new("t"), Cifar100Labels::Fine).unwrap_err();
        assert_eq!(e.to_string(), "t: byte 0: label 20 out of range 0..20");
    }

    #[test]
    fn errors_name_file_and_offset() {
        let mut bytes = record(1, 0);
        bytes.extend(record(10, 0));
        let e = parse_cifar10(&bytes, Path::new("x.bin")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.bin: byte 3073: label 10 out of range 0..10"
        );
        let e = parse_cifar10(&bytes[..5000], Path::new("x.bin")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.bin: byte 3073: truncated: expected 6146 bytes, found 5000"
        );
    }

    fn ramp(shape: Shape) -> Vec<f32> {
        (0..shape.len()).map(|i| i as f32 + 1.0).collect()
    }

    #[test]
    fn crop_and_flip_move_pixels_as_documented() {
        let shape = Shape {
            channels: 2,
            height: 3,
            width: 4,
        };
        let img = ramp(shape);
        let mut out = vec![0.0; shape.len()];
        crop_flip(&img, shape, 2, 2, 2, false, &mut out);
        assert_eq!(out, img, "centre crop without flip is the identity");
        let mut twice = vec![0.0; shape.len()];
        crop_flip(&img, shape, 2, 2, 2, true, &mut out);
        crop_flip(&out, shape, 2, 2, 2, true, &mut twice);
        assert_eq!(twice, img, "flip twice is the identity");
        assert_eq!(&out[..4], &[4.0, 3.0, 2.0, 1.0]);
        // Window one row down and one column right: shifted up-left, zero at the edge.
        crop_flip(&img, shape, 1, 2, 2, false, &mut out);
        assert_eq!(&out[..4], &[6.0, 7.0, 8.0, 0.0]);
        assert_eq!(&out[8..12], &[0.0; 4]);
        assert_eq!(&out[12..16], &[18.0, 19.0, 20.0, 0.0]);
        // Fully off the image.
        crop_flip(&img, shape, 4, 0, 0, false, &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn random_crop_flip_is_seeded() {
        let shape = CIFAR_SHAPE;
        let batch: Vec<f32> = (0..4).flat_map(|_| ramp(shape)).collect();
        let run = |seed| {
            let mut b = batch.clone();
            random_crop_flip(&mut b, shape, &mut ChaCha8Rng::seed_from_u64(seed), 4);
            b
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let mut b = batch.clone();
        random_crop_flip(&mut b, shape, &mut ChaCha8Rng::seed_from_u64(0), 0);
        // Without padding only flips happen: each image is itself or its mirror.
        let mut mirror = vec![0.0; shape.len()];
        crop_flip(&batch[..shape.len()], shape, 0, 0, 0, true, &mut mirror);
        for img in b.chunks_exact(shape.len()) {
            assert!(img == &batch[..shape.len()] || img == mirror.as_slice());
        }
        // Each output is one of the documented crops; over many images every offset and
        // both flips occur, flips about half the time.
        let small = Shape {
            channels: 1,
            height: 6,
            width: 6,
        };
        let one = ramp(small);
        let mut batch: Vec<f32> = (0..1000).flat_map(|_| one.clone()).collect();
        random_crop_flip(&mut batch, small, &mut ChaCha8Rng::seed_from_u64(5), 2);
        let mut seen = std::collections::HashMap::new();
        let mut candidate = vec![0.0; small.len()];
        for img in batch.chunks_exact(small.len()) {
            let mut found = None;
            for (dy, dx, flip) in
                (0..5).flat_map(|y| (0..5).flat_map(move |x| [(y, x, false), (y, x, true)]))
            {
                crop_flip(&one, small, 2, dy, dx, flip, &mut candidate);
                if candidate == img {
                    found = Some((dy, dx, flip));
                }
            }
            let key = found.expect("output is a crop of the padded image");
            *seen.entry(key).or_insert(0usize) += 1;
        }
        assert_eq!(seen.len(), 50, "every offset with and without flip");
        let flips: usize = seen.iter().filter(|(k, _)| k.2).map(|(_, n)| n).sum();
        assert!((430..570).contains(&flips), "{flips} flips of 1000");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..7000)) {
            let _ = parse_cifar10(&bytes, Path::new("a"));
            let _ = parse_cifar100(&bytes, Path::new("b"), Cifar100Labels::Fine);
            let _ = parse_cifar100(&bytes, Path::new("b"), Cifar100Labels::Coarse);
        }
    }
}
