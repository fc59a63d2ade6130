//! MNIST in the IDX format of LeCun and Cortes: big-endian headers, then raw `u8` data.
//!
//! An image file is the magic number `0x00000803` (unsigned bytes, three dimensions), the
//! image count, rows and columns (each a big-endian `u32`), then `count * rows * cols`
//! pixels row-major. A label file is `0x00000801`, the count, then one byte a label. The
//! loader checks every length against its header, every label against the ten classes,
//! and that the image and label files agree on the count. Fashion-MNIST uses the same
//! format and file names, so it loads too.

use super::{
    candidate_dirs, find_file, truncated, DataError, DataReader, Dataset, Shape, Split,
    MAX_DECOMPRESSED,
};
use std::path::Path;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The number of MNIST classes.
pub const MNIST_CLASSES: u32 = 10;

/// The images of an IDX image file, as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows of each image.
    pub rows: usize,
    /// Columns of each image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
}

fn be_u32(bytes: &[u8], at: usize, name: &Path) -> Result<u32, DataError> {
    match bytes.get(at..at + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(truncated(name, bytes.len(), at + 4, bytes.len())),
    }
}

fn check_magic(bytes: &[u8], expected: u32, name: &Path) -> Result<(), DataError> {
    let found = be_u32(bytes, 0, name)?;
    if found != expected {
        return Err(DataError::BadMagic {
            path: name.to_path_buf(),
            offset: 0,
            found,
            expected,
        });
    }
    Ok(())
}

/// The exact length a file must have: `header` bytes then `items` items of `item` bytes.
fn body_end(
    header: usize,
    items: usize,
    item: usize,
    at: u64,
    name: &Path,
) -> Result<usize, DataError> {
    items
        .checked_mul(item)
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| DataError::BadHeader {
            path: name.to_path_buf(),
            offset: at,
            what: format!("{items} items of {item} bytes overflow the address space"),
        })
}

/// Checks that `bytes` is exactly `end` long.
fn check_len(bytes: &[u8], end: usize, name: &Path) -> Result<(), DataError> {
    if bytes.len() < end {
        return Err(truncated(name, bytes.len(), end, bytes.len()));
    }
    if bytes.len() > end {
        return Err(DataError::Trailing {
            path: name.to_path_buf(),
            offset: end as u64,
            extra: (bytes.len() - end) as u64,
        });
    }
    Ok(())
}

/// Parses an IDX image file held in `bytes`; `name` is for messages.
pub fn parse_images(bytes: &[u8], name: &Path) -> Result<IdxImages, DataError> {
    check_magic(bytes, IMAGES_MAGIC, name)?;
    let count = be_u32(bytes, 4, name)? as usize;
    let rows = be_u32(bytes, 8, name)? as usize;
    let cols = be_u32(bytes, 12, name)? as usize;
    for (value, at, what) in [(rows, 8, "rows"), (cols, 12, "columns")] {
        if value == 0 {
            return Err(DataError::BadHeader {
                path: name.to_path_buf(),
                offset: at,
                what: format!("zero {what}"),
            });
        }
    }
    let image = rows.checked_mul(cols).ok_or_else(|| DataError::BadHeader {
        path: name.to_path_buf(),
        offset: 8,
        what: format!("{rows} x {cols} images overflow the address space"),
    })?;
    let end = body_end(16, count, image, 4, name)?;
    check_len(bytes, end, name)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: bytes[16..end].to_vec(),
    })
}

/// Parses an IDX label file held in `bytes`, checking each label is in `0..classes`;
/// `name` is for messages.
pub fn parse_labels(bytes: &[u8], name: &Path, classes: u32) -> Result<Vec<u8>, DataError> {
    check_magic(bytes, LABELS_MAGIC, name)?;
    let count = be_u32(bytes, 4, name)? as usize;
    let end = body_end(8, count, 1, 4, name)?;
    check_len(bytes, end, name)?;
    let labels = &bytes[8..end];
    if let Some(i) = labels.iter().position(|&l| u32::from(l) >= classes) {
        return Err(DataError::LabelOutOfRange {
            path: name.to_path_buf(),
            offset: (8 + i) as u64,
            label: u32::from(labels[i]),
            classes,
        });
    }
    Ok(labels.to_vec())
}

/// An MNIST dataset from the bytes of an image file and a label file, pixels scaled to
/// [0, 1]. The names are for messages and become the dataset's name.
pub fn mnist_from_bytes(
    images: &[u8],
    images_name: &Path,
    labels: &[u8],
    labels_name: &Path,
) -> Result<Dataset, DataError> {
    let parsed = parse_images(images, images_name)?;
    let labels = parse_labels(labels, labels_name, MNIST_CLASSES)?;
    if parsed.count != labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images_name.to_path_buf(),
            offset: 4,
            images: parsed.count as u64,
            labels_path: labels_name.to_path_buf(),
            labels: labels.len() as u64,
        });
    }
    Ok(Dataset {
        name: images_name.display().to_string(),
        images: parsed
            .pixels
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect(),
        labels,
        shape: Shape {
            channels: 1,
            height: parsed.rows,
            width: parsed.cols,
        },
        classes: MNIST_CLASSES as usize,
        class_names: (0..MNIST_CLASSES).map(|c| c.to_string()).collect(),
    })
}

fn load_part(dir: &Path, part: &str, what: &str) -> Result<Dataset, DataError> {
    let dirs = candidate_dirs(dir, &["mnist", "MNIST", "MNIST/raw"]);
    // The official names, then the dotted variant some mirrors use.
    let images_names = [
        format!("{part}-images-idx3-ubyte"),
        format!("{part}-images.idx3-ubyte"),
    ];
    let labels_names = [
        format!("{part}-labels-idx1-ubyte"),
        format!("{part}-labels.idx1-ubyte"),
    ];
    let images_names: Vec<&str> = images_names.iter().map(String::as_str).collect();
    let labels_names: Vec<&str> = labels_names.iter().map(String::as_str).collect();
    let images_path = find_file(&dirs, &images_names, &format!("MNIST {what} images"))?;
    let labels_path = find_file(&dirs, &labels_names, &format!("MNIST {what} labels"))?;
    let images = read_idx(&images_path, 16)?;
    let labels = read_idx(&labels_path, 8)?;
    mnist_from_bytes(&images, &images_path, &labels, &labels_path)
}

/// Reads an IDX file of `header` bytes (16 for images, 8 for labels): the header first,
/// then no more than the length it announces (plus one byte, so that trailing data is
/// still reported), so that a gzip bomb or a lying header costs no more memory than the
/// data such a header promises, and never more than [`MAX_DECOMPRESSED`].
fn read_idx(path: &Path, header: usize) -> Result<Vec<u8>, DataError> {
    let mut r = DataReader::open(path)?;
    let mut out = Vec::with_capacity(header);
    r.read_up_to(header as u64, &mut out)?;
    if out.len() < header {
        return Ok(out); // The parser reports the short header.
    }
    let dims: u64 = out[8.min(header)..header]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes(c.try_into().expect("4 bytes"))))
        .product();
    let count = u64::from(u32::from_be_bytes(out[4..8].try_into().expect("4 bytes")));
    let announced = count.saturating_mul(dims).saturating_add(header as u64);
    let limit = announced.min(MAX_DECOMPRESSED);
    match r.read_rest_capped(limit, &mut out) {
        // Longer than announced: read one byte past, so the parser names the trailing data.
        Err(DataError::TooLarge { .. }) if limit == announced => Ok(out),
        other => other.map(|()| out),
    }
}

/// MNIST from `dir` (or its `mnist/` subfolder): `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each
/// raw or `.gz`. Pixels are scaled to [0, 1].
pub fn load_mnist(dir: &Path) -> Result<Split, DataError> {
    let train = load_part(dir, "train", "training")?;
    let test = load_part(dir, "t10k", "test")?;
    if train.shape != test.shape {
        return Err(DataError::ShapeMismatch {
            path: test.name.clone().into(),
            found: test.shape,
            other: train.name.clone().into(),
            expected: train.shape,
        });
    }
    Ok(Split { train, test })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn images_file(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IMAGES_MAGIC, count, rows, cols] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(pixels);
        v
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    #[test]
    fn parses_a_small_file() {
        let name = Path::new("imgs");
        let px: Vec<u8> = (0..12).collect();
        let parsed = parse_images(&images_file(2, 2, 3, &px), name).unwrap();
        assert_eq!((parsed.count, parsed.rows, parsed.cols), (2, 2, 3));
        assert_eq!(parsed.pixels, px);
        let d = mnist_from_bytes(
            &images_file(2, 2, 3, &px),
            name,
            &labels_file(&[3, 9]),
            Path::new("lbls"),
        )
        .unwrap();
        assert_eq!(d.labels, vec![3, 9]);
        assert_eq!(d.image(1)[5], 11.0 / 255.0);
        assert_eq!(
            d.shape,
            Shape {
                channels: 1,
                height: 2,
                width: 3
            }
        );
    }

    #[test]
    fn errors_name_file_and_offset() {
        let name = Path::new("dir/t10k-labels-idx1-ubyte.gz");
        let e = parse_labels(&labels_file(&[1, 2, 11]), name, 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dir/t10k-labels-idx1-ubyte.gz: byte 10: label 11 out of range 0..10"
        );
        let mut bad = labels_file(&[1]);
        bad[3] = 3;
        let e = parse_labels(&bad, name, 10).unwrap_err().to_string();
        assert!(
            e.contains("byte 0: wrong magic number 0x00000803, expected 0x00000801"),
            "{e}"
        );
        let img = images_file(2, 2, 2, &[0; 7]);
        let e = parse_images(&img, Path::new("i")).unwrap_err().to_string();
        assert_eq!(e, "i: byte 23: truncated: expected 24 bytes, found 23");
        let img = images_file(1, 2, 2, &[0; 5]);
        let e = parse_images(&img, Path::new("i")).unwrap_err().to_string();
        assert!(
            e.starts_with("i: byte 20: 1 unexpected trailing bytes"),
            "{e}"
        );
        let e = parse_images(&[0, 0, 8], Path::new("i"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "i: byte 3: truncated: expected 4 bytes, found 3");
        let e = parse_images(&images_file(1, 0, 2, &[]), Path::new("i")).unwrap_err();
        assert!(e.to_string().contains("byte 8: zero rows"), "{e}");
        let e = mnist_from_bytes(
            &images_file(2, 1, 1, &[0, 0]),
            Path::new("i"),
            &labels_file(&[1]),
            Path::new("l"),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "i: byte 4: 2 images, but l holds 1 labels");
    }

    #[test]
    fn huge_header_counts_are_errors_not_allocations() {
        let img = images_file(u32::MAX, u32::MAX, u32::MAX, &[]);
        assert!(parse_images(&img, Path::new("i")).is_err());
        let mut lbl = labels_file(&[]);
        lbl[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_labels(&lbl, Path::new("l"), 10).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_images(&bytes, Path::new("i"));
            let _ = parse_labels(&bytes, Path::new("l"), 10);
        }

        // Past the magic number, so that the header and length checks are exercised too.
        #[test]
        fn arbitrary_bodies_never_panic(
            header in proptest::collection::vec(0u8..4, 0..12),
            body in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut img = IMAGES_MAGIC.to_be_bytes().to_vec();
            img.extend_from_slice(&header);
            img.extend_from_slice(&body);
            let _ = parse_images(&img, Path::new("i"));
            let mut lbl = LABELS_MAGIC.to_be_bytes().to_vec();
            lbl.extend_from_slice(&header);
            lbl.extend_from_slice(&body);
            let _ = parse_labels(&lbl, Path::new("l"), 10);
            let _ = mnist_from_bytes(&img, Path::new("i"), &lbl, Path::new("l"));
        }
    }
}
