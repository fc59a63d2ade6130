//! Tests across the loaders: files on disk (raw and gzip, corrupted on purpose, in a
//! temporary folder), normalisation, and the real datasets when they are present.

use super::*;
use proptest::prelude::*;
use std::io::Write;
use std::time::Instant;

/// The real data: `RINGNN_DATA`, else `../shared/data` beside the workspace.
fn real_data() -> Option<PathBuf> {
    let dir = data_dir(None).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("../shared/data")
    });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: RINGNN_DATA not set and ../shared/data absent");
        None
    }
}

/// A fresh folder under the system temporary folder (`tempfile`), removed when dropped.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("ringnn-data-{tag}-"))
                .tempdir()
                .unwrap(),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(count: u32, side: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [idx::IMAGES_MAGIC, count, side, side] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend((0..count * side * side).map(|i| (i % 256) as u8));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = idx::LABELS_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn cifar_records(labels: &[u8]) -> Vec<u8> {
    labels
        .iter()
        .flat_map(|&l| std::iter::once(l).chain(std::iter::repeat_n(l.wrapping_mul(20), 3072)))
        .collect()
}

/// A little MNIST: training files raw, test files gzip, in the `mnist/` subfolder.
fn write_mnist(t: &TempDir) {
    std::fs::create_dir_all(t.path().join("mnist")).unwrap();
    t.write("mnist/train-images-idx3-ubyte", &idx_images(3, 4));
    t.write("mnist/train-labels-idx1-ubyte", &idx_labels(&[0, 5, 9]));
    t.write("mnist/t10k-images-idx3-ubyte.gz", &gzip(&idx_images(2, 4)));
    t.write(
        "mnist/t10k-labels-idx1-ubyte.gz",
        &gzip(&idx_labels(&[7, 1])),
    );
}

#[test]
fn mnist_files_raw_and_gz() {
    let t = TempDir::new("mnist");
    write_mnist(&t);
    let s = load_mnist(t.path()).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (3, 2));
    assert_eq!(s.test.labels, vec![7, 1]);
    assert_eq!(
        s.train.shape,
        Shape {
            channels: 1,
            height: 4,
            width: 4
        }
    );
    assert_eq!(s.train.image(1)[0], 16.0 / 255.0);
    assert!(s.test.name.ends_with("t10k-images-idx3-ubyte.gz"));
}

#[test]
fn corrupted_files_name_path_and_offset() {
    let t = TempDir::new("corrupt");
    write_mnist(&t);
    let dir = t.path().join("mnist");

    let mut bad = idx_labels(&[0, 5, 9]);
    bad[10] = 200;
    let p = t.write("mnist/train-labels-idx1-ubyte", &bad);
    let e = load_mnist(t.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: byte 10: label 200 out of range 0..10", p.display())
    );
    t.write("mnist/train-labels-idx1-ubyte", &idx_labels(&[0, 5, 9]));

    let mut bad = idx_images(2, 4);
    bad[3] = 0x01;
    let p = t.write("mnist/t10k-images-idx3-ubyte.gz", &gzip(&bad));
    let e = load_mnist(t.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: byte 0: wrong magic number 0x00000801, expected 0x00000803",
            p.display()
        )
    );

    let good = idx_images(2, 4);
    let p = t.write(
        "mnist/t10k-images-idx3-ubyte.gz",
        &gzip(&good[..good.len() - 5]),
    );
    let e = load_mnist(t.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: byte 43: truncated: expected 48 bytes, found 43",
            p.display()
        )
    );

    // A gzip stream cut short is a gzip error, not a short file read as complete.
    let gz = gzip(&good);
    let p = t.write("mnist/t10k-images-idx3-ubyte.gz", &gz[..gz.len() / 2]);
    let e = load_mnist(t.path()).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: gzip stream broken after", p.display())),
        "{e}"
    );
    t.write("mnist/t10k-images-idx3-ubyte.gz", &gzip(&good));

    let p = t.write(
        "mnist/t10k-labels-idx1-ubyte.gz",
        &gzip(&idx_labels(&[1, 2, 3])),
    );
    let e = load_mnist(t.path()).unwrap_err().to_string();
    let images = dir.join("t10k-images-idx3-ubyte.gz");
    assert_eq!(
        e,
        format!(
            "{}: byte 4: 2 images, but {} holds 3 labels",
            images.display(),
            p.display()
        )
    );

    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = load_mnist(t.path()).unwrap_err().to_string();
    assert!(e.starts_with("MNIST test labels not found; tried "), "{e}");
    assert!(e.contains("mnist/t10k-labels-idx1-ubyte.gz"), "{e}");
    assert!(e.contains("RINGNN_DATA") && e.contains("--data-dir"), "{e}");
}

#[test]
fn cifar10_folders_in_either_naming() {
    let t = TempDir::new("cifar");
    std::fs::create_dir_all(t.path().join("official")).unwrap();
    std::fs::create_dir_all(t.path().join("exact")).unwrap();
    t.write("official/data_batch_2.bin", &cifar_records(&[2, 2]));
    t.write("official/data_batch_1.bin.gz", &gzip(&cifar_records(&[1])));
    // Both forms of one batch: read once, the raw one.
    t.write("official/data_batch_1.bin", &cifar_records(&[1]));
    t.write(
        "official/test_batch.bin.gz",
        &gzip(&cifar_records(&[9, 8, 7])),
    );
    t.write("official/readme.html", b"not a batch");
    t.write(
        "official/batches.meta.txt",
        b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n",
    );
    let s = load_cifar10(&t.path().join("official")).unwrap();
    assert_eq!(s.train.labels, vec![1, 2, 2]);
    assert_eq!(s.test.labels, vec![9, 8, 7]);
    assert_eq!(s.train.class_names[9], "j");
    assert_eq!(s.train.image(1)[0], 40.0 / 255.0);

    t.write("exact/train_b1.bin.gz", &gzip(&cifar_records(&[3])));
    t.write("exact/train_b2.bin", &cifar_records(&[4]));
    t.write("exact/test_0000.bin.gz", &gzip(&cifar_records(&[5])));
    let s = load_cifar10(&t.path().join("exact")).unwrap();
    assert_eq!(
        (s.train.labels.clone(), s.test.labels.clone()),
        (vec![3, 4], vec![5])
    );
    assert_eq!(s.train.class_names[0], "airplane");

    let p = t.write("exact/train_b2.bin", &cifar_records(&[1, 200]));
    let e = load_cifar10(&t.path().join("exact"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("{}: byte 3073: label 200 out of range 0..10", p.display())
    );
    let p = t.write("exact/train_b2.bin", &cifar_records(&[1, 2])[..4000]);
    let e = load_cifar10(&t.path().join("exact"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: byte 3073: truncated: expected 6146 bytes, found 4000",
            p.display()
        )
    );

    let e = load_cifar10(t.path()).unwrap_err().to_string();
    assert!(
        e.starts_with("CIFAR-10 training and test batches not found"),
        "{e}"
    );
}

#[test]
fn cifar100_coarse_and_fine() {
    let t = TempDir::new("cifar100");
    let record = |coarse: u8, fine: u8| {
        let mut r = vec![coarse, fine];
        r.extend(std::iter::repeat_n(0u8, 3072));
        r
    };
    let mut train = record(1, 42);
    train.extend(record(19, 99));
    t.write("train.bin.gz", &gzip(&train));
    t.write("test.bin", &record(0, 0));
    let fine = load_cifar100(t.path(), Cifar100Labels::Fine).unwrap();
    assert_eq!(
        (fine.train.labels.clone(), fine.train.classes),
        (vec![42, 99], 100)
    );
    let coarse = load_cifar100(t.path(), Cifar100Labels::Coarse).unwrap();
    assert_eq!(coarse.train.labels, vec![1, 19]);
}

#[test]
fn normalise_uses_training_statistics() {
    let shape = Shape {
        channels: 2,
        height: 1,
        width: 2,
    };
    let ds = |images: Vec<f32>| Dataset {
        name: "t".into(),
        labels: vec![0; images.len() / 4],
        images,
        shape,
        classes: 1,
        class_names: vec!["x".into()],
    };
    // Channel 0 holds 1 and 3 (mean 2, std 1); channel 1 is constant 5.
    let mut split = Split {
        train: ds(vec![1.0, 3.0, 5.0, 5.0, 3.0, 1.0, 5.0, 5.0]),
        test: ds(vec![2.0, 4.0, 5.0, 6.0]),
    };
    let stats = normalise(&mut split);
    assert_eq!(stats.mean, vec![2.0, 5.0]);
    assert_eq!(stats.std, vec![1.0, 1.0]);
    assert_eq!(
        split.train.images,
        vec![-1.0, 1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0]
    );
    assert_eq!(split.test.images, vec![0.0, 2.0, 0.0, 1.0]);

    let mut s = synth::synthetic_digits(300, 10, 4);
    normalise(&mut s);
    let after = ChannelStats::of(&s.train);
    assert!(
        after.mean[0].abs() < 1e-4 && (after.std[0] - 1.0).abs() < 1e-4,
        "{after:?}"
    );
}

#[test]
fn data_dir_prefers_the_flag() {
    let flag = Path::new("/from/flag");
    let env = Some(std::ffi::OsString::from("/from/env"));
    assert_eq!(
        data_dir_from(Some(flag), env.clone()),
        Some(flag.to_path_buf())
    );
    assert_eq!(data_dir_from(None, env), Some(PathBuf::from("/from/env")));
    assert_eq!(data_dir_from(None, Some("".into())), None);
    assert_eq!(data_dir_from(None, None), None);
    assert_eq!(data_dir(Some(flag)), Some(flag.to_path_buf()));
    let t = TempDir::new("digits");
    write_mnist(&t);
    let s = digits(Some(t.path()), 5).map(|s| (s.train.len(), s.test.len()));
    assert_eq!(s.ok(), Some((3, 2)));
}

#[test]
fn gzip_is_recognised_by_magic() {
    let plain = b"hello, ring".to_vec();
    assert_eq!(
        gunzip_if_needed(gzip(&plain), Path::new("x")).unwrap(),
        plain
    );
    assert_eq!(
        gunzip_if_needed(plain.clone(), Path::new("x")).unwrap(),
        plain
    );
    let mut two = gzip(b"ab");
    two.extend(gzip(b"cd"));
    assert_eq!(gunzip_if_needed(two, Path::new("x")).unwrap(), b"abcd");
}

proptest! {
    #[test]
    fn arbitrary_gzip_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![0x1f, 0x8b, 0x08];
        bytes.extend(body);
        let _ = gunzip_if_needed(bytes, Path::new("x"));
    }
}

#[test]
fn real_mnist() {
    let Some(root) = real_data() else { return };
    let start = Instant::now();
    let s = load_mnist(&root).unwrap();
    println!("MNIST loaded in {:.3} s", start.elapsed().as_secs_f64());
    assert_eq!((s.train.len(), s.test.len()), (60_000, 10_000));
    assert_eq!(
        s.train.shape,
        Shape {
            channels: 1,
            height: 28,
            width: 28
        }
    );
    for d in [&s.train, &s.test] {
        let mut counts = [0usize; 10];
        for &l in &d.labels {
            counts[usize::from(l)] += 1;
        }
        assert!(counts.iter().all(|&c| c > d.len() / 15), "{counts:?}");
        assert!(d.images.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // The well-known MNIST training mean and standard deviation.
    let stats = ChannelStats::of(&s.train);
    assert!((stats.mean[0] - 0.1307).abs() < 1e-3, "{stats:?}");
    assert!((stats.std[0] - 0.3081).abs() < 1e-3, "{stats:?}");
    assert_eq!(s.train.labels[..5], [5, 0, 4, 1, 9]);
}

#[test]
fn real_cifar10() {
    let Some(root) = real_data() else { return };
    let start = Instant::now();
    let s = load_cifar10(&root).unwrap();
    println!(
        "CIFAR-10 (20,000 + 10,000) loaded in {:.3} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!((s.train.len(), s.test.len()), (20_000, 10_000));
    assert_eq!(s.train.class_names, cifar::CIFAR10_CLASSES);
    assert!(s.train.labels.iter().chain(&s.test.labels).all(|&l| l < 10));
    // The official first training labels (frog, truck, truck, deer, automobile).
    assert_eq!(s.train.labels[..5], [6, 9, 9, 4, 1]);
    let stats = ChannelStats::of(&s.train);
    for (m, expected) in stats.mean.iter().zip([0.491, 0.482, 0.447]) {
        assert!((m - expected).abs() < 0.02, "{stats:?}");
    }

    let exact = load_cifar10(&root.join("cifar10-exact")).unwrap();
    assert_eq!((exact.train.len(), exact.test.len()), (7_044, 761));
    // The exact set begins with the same images as the JPEG-recompressed one.
    assert_eq!(exact.train.labels[..4000], s.train.labels[..4000]);
    assert_eq!(exact.test.labels[..], s.test.labels[..761]);
    let diff: f32 = exact
        .train
        .image(0)
        .iter()
        .zip(s.train.image(0))
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(
        diff / 3072.0 < 0.1,
        "mean pixel difference {}",
        diff / 3072.0
    );
}

#[test]
fn real_tatoeba() {
    let Some(root) = real_data() else { return };
    let cfg = TextConfig::default();
    let c = load_tatoeba(&root, &cfg).unwrap();
    assert_eq!(c.pairs_read, 5_000);
    assert_eq!(c.train.len() + c.test.len() + c.too_long, 5_000);
    let test_share = c.test.len() as f64 / (c.train.len() + c.test.len()) as f64;
    assert!((0.04..0.2).contains(&test_share), "{test_share}");
    assert!(c.src_vocab.len() > 200 && c.tgt_vocab.len() > 200);
    assert!(c
        .train
        .iter()
        .all(|p| p.src.len() <= cfg.max_len && p.tgt.len() <= cfg.max_len));
    println!(
        "Tatoeba: {} train, {} test, {} too long; vocabularies {} en, {} fr",
        c.train.len(),
        c.test.len(),
        c.too_long,
        c.src_vocab.len(),
        c.tgt_vocab.len()
    );
}

#[test]
fn synthetic_generation_speed() {
    // Unoptimised code is some fifty times slower; the figure that matters is release's.
    let n = if cfg!(debug_assertions) {
        1_000
    } else {
        10_000
    };
    let start = Instant::now();
    let s = synthetic_digits(n, 0, 1);
    let secs = start.elapsed().as_secs_f64();
    println!("{n} synthetic digits in {secs:.3} s");
    assert_eq!(s.train.len(), n);
    // Loose enough for a loaded machine; it catches an accidental quadratic, not jitter.
    assert!(cfg!(debug_assertions) || secs < 5.0, "{secs} s");
}

/// A gzip stream of `header` followed by `zeros` zero bytes, written in pieces so the
/// test never holds the inflated size in memory itself.
fn gzip_bomb(header: &[u8], zeros: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(header).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..zeros >> 20 {
        e.write_all(&block).unwrap();
    }
    e.finish().unwrap()
}

/// Issue 14, drill 7: a gzip bomb is refused while it inflates, after at most the cap,
/// not after inflating it whole.
#[test]
fn a_gzip_bomb_is_refused_once_the_cap_is_reached() {
    let t = TempDir::new("bomb");
    let bomb = gzip_bomb(b"", 64 << 20);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let p = t.write("bomb.bin.gz", &bomb);
    let e = read_file_capped(&p, 1 << 20).unwrap_err();
    match &e {
        DataError::TooLarge { limit, gzip, .. } => assert!(*limit == 1 << 20 && *gzip),
        other => panic!("expected TooLarge, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("bomb.bin.gz") && msg.contains("after decompression"),
        "{msg}"
    );
    // A raw file over the cap likewise.
    let p = t.write("big.bin", &vec![0u8; (1 << 20) + 5]);
    assert!(matches!(
        read_file_capped(&p, 1 << 20),
        Err(DataError::TooLarge { gzip: false, .. })
    ));
    // Under the cap, both read whole.
    let p = t.write("small.bin.gz", &gzip(b"hello"));
    assert_eq!(read_file_capped(&p, 5).unwrap(), b"hello");
}

/// An IDX file inflates no further than its header announces: a bomb behind the header of
/// two 4x4 images stops after 16 + 32 + 1 bytes and is reported as trailing data.
#[test]
fn an_idx_bomb_stops_at_the_length_its_header_announces() {
    let t = TempDir::new("idx-bomb");
    std::fs::create_dir_all(t.path().join("mnist")).unwrap();
    let header = &idx_images(2, 4)[..16];
    t.write(
        "mnist/train-images-idx3-ubyte.gz",
        &gzip_bomb(header, 256 << 20),
    );
    t.write("mnist/train-labels-idx1-ubyte", &idx_labels(&[1, 2]));
    t.write("mnist/t10k-images-idx3-ubyte", &idx_images(1, 4));
    t.write("mnist/t10k-labels-idx1-ubyte", &idx_labels(&[3]));
    let e = load_mnist(t.path()).unwrap_err().to_string();
    // One byte past the announced end was inflated, not 256 MiB.
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("byte 48: 1 unexpected trailing"),
        "{e}"
    );
}
