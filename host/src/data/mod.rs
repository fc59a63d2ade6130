//! Training data: the real datasets in their official formats, and a dataset that ringnn
//! makes itself so that every command and test runs on a machine without downloads.
//!
//! The precision studies need the same data in every engine (Float, Plain, Mpc), so the
//! loaders produce plain owned `f32` tensors once, before any sharing, and every source of
//! randomness (synthetic images, augmentation, text split) is a seeded ChaCha stream.
//!
//! - [`idx`]: MNIST in IDX format ([`load_mnist`]).
//! - [`cifar`]: CIFAR-10 and CIFAR-100 binary batches ([`load_cifar10`],
//!   [`load_cifar100`]), and the seeded crop-and-flip augmentation ([`random_crop_flip`]).
//! - [`synth`]: digit-like glyphs drawn with random affine transforms and noise
//!   ([`synthetic_digits`]), the default when no data directory is given ([`digits`]).
//! - [`text`]: the Tatoeba English-French sentence pairs: tokeniser, vocabularies, length
//!   limit and a deterministic split ([`load_tatoeba`]).
//!
//! Every file may be stored raw or gzip-compressed: a file `X` is looked up as `X` and as
//! `X.gz`, and gzip is recognised by its magic bytes. Every parser works on `&[u8]` plus
//! the name to report, never panics on any input (a property test feeds them arbitrary
//! bytes), and reports a [`DataError`] that names the file and the byte offset (or line)
//! at fault. The data directory comes from `--data-dir`, else from `RINGNN_DATA`
//! ([`data_dir`]).

pub mod cifar;
pub mod idx;
pub mod synth;
pub mod text;

#[cfg(test)]
mod tests;

pub use cifar::{load_cifar10, load_cifar100, random_crop_flip, Cifar100Labels};
pub use idx::load_mnist;
pub use synth::synthetic_digits;
pub use text::{load_tatoeba, Corpus, Pair, TextConfig, Vocab};

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The environment variable that names the data directory when `--data-dir` is absent.
pub const DATA_ENV: &str = "RINGNN_DATA";

/// Largest file accepted, after decompression (256 MiB): the largest official file here
/// (CIFAR-100 train.bin) is 154 MB, so anything far beyond is a corrupt or hostile
/// stream. The cap holds while inflating: a gzip bomb is refused once this many bytes
/// came out, before more memory is spent. Loaders whose header says how long the file
/// must be (IDX) cap at that length instead.
pub const MAX_DECOMPRESSED: u64 = 256 << 20;

/// Why data could not be loaded. Every variant names the file; those about contents name
/// the byte offset (or line) where the fault was found.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// None of the candidate files exists.
    #[error(
        "{what} not found; tried {}; pass --data-dir or set RINGNN_DATA to a folder \
         holding it",
        join_paths(.tried)
    )]
    Missing {
        /// What was looked for ("MNIST training images", ...).
        what: String,
        /// Every path tried, in order.
        tried: Vec<PathBuf>,
    },
    /// The operating system refused to read the file or folder.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The gzip stream is corrupt, truncated or too large.
    #[error(
        "{}: gzip stream broken after {decoded} decompressed bytes: {source}",
        .path.display()
    )]
    Gzip {
        /// The file.
        path: PathBuf,
        /// How many bytes were decompressed before the fault.
        decoded: u64,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file (after decompression) is longer than any file of its format may be.
    #[error(
        "{}: more than {limit} bytes{}: refused before reading further",
        .path.display(),
        if *.gzip { " after decompression" } else { "" }
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap, in bytes.
        limit: u64,
        /// Whether the file is gzip.
        gzip: bool,
    },
    /// The file ends before the data its header (or record size) promises.
    #[error(
        "{}: byte {offset}: truncated: expected {expected} bytes, found {actual}",
        .path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the missing data begins (the start of an incomplete record or header).
        offset: u64,
        /// The length the file should have.
        expected: u64,
        /// The length it has.
        actual: u64,
    },
    /// The file has bytes after the data its header describes.
    #[error(
        "{}: byte {offset}: {extra} unexpected trailing bytes (expected length {offset})",
        .path.display()
    )]
    Trailing {
        /// The file.
        path: PathBuf,
        /// Where the data should end.
        offset: u64,
        /// How many bytes follow.
        extra: u64,
    },
    /// The magic number at the start of the file is not that of the expected format.
    #[error(
        "{}: byte {offset}: wrong magic number {found:#010x}, expected {expected:#010x}",
        .path.display()
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Where the magic number is.
        offset: u64,
        /// The number found.
        found: u32,
        /// The number the format requires.
        expected: u32,
    },
    /// A header field is impossible (a dimension of zero, a size that overflows).
    #[error("{}: byte {offset}: {what}", .path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Where the field is.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A label is not a valid class.
    #[error(
        "{}: byte {offset}: label {label} out of range 0..{classes}",
        .path.display()
    )]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Where the label is.
        offset: u64,
        /// The label found.
        label: u32,
        /// The number of classes.
        classes: u32,
    },
    /// An image file and its label file disagree on the number of items.
    #[error(
        "{}: byte {offset}: {images} images, but {} holds {labels} labels",
        .images_path.display(),
        .labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Where the image file states its count.
        offset: u64,
        /// Its count.
        images: u64,
        /// The label file.
        labels_path: PathBuf,
        /// Its count.
        labels: u64,
    },
    /// Files of one dataset disagree on the image shape.
    #[error("{}: images are {found}, but {} holds {expected}", .path.display(), .other.display())]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// Its shape.
        found: Shape,
        /// The file it disagrees with.
        other: PathBuf,
        /// That file's shape.
        expected: Shape,
    },
    /// A line of a text file is not valid UTF-8.
    #[error("{}: line {line}: byte {offset}: invalid UTF-8", .path.display())]
    BadUtf8 {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: u64,
        /// The offset of the first invalid byte in the file.
        offset: u64,
    },
    /// A line of a text file does not have the expected fields.
    #[error("{}: line {line}: byte {offset}: {what}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: u64,
        /// The offset of the start of the line in the file.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// The shape of one image: channels x height x width.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Shape {
    /// Channels (1 for grayscale, 3 for RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl Shape {
    /// Number of values in one image.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether an image of this shape holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of values in one channel of one image.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Labelled images, owned.
///
/// `images` holds `len()` images of `shape` one after another, each channel-major
/// (N x C x H x W). Loaders scale pixels to [0, 1]; [`normalise`] then makes each
/// channel zero-mean, unit-variance on the training split.
#[derive(Clone, PartialEq, Debug)]
pub struct Dataset {
    /// Where the data came from, for messages (a path, or "synthetic digits (seed 7)").
    pub name: String,
    /// The pixels, N x C x H x W.
    pub images: Vec<f32>,
    /// One label per image, each in `0..classes`.
    pub labels: Vec<u8>,
    /// The shape of one image.
    pub shape: Shape,
    /// The number of classes.
    pub classes: usize,
    /// The name of each class, `classes` of them.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.shape.len();
        &self.images[i * n..(i + 1) * n]
    }
}

/// A training set and a test set of the same shape and classes.
#[derive(Clone, PartialEq, Debug)]
pub struct Split {
    /// The data to train on; normalisation statistics come from it alone.
    pub train: Dataset,
    /// The held-out data.
    pub test: Dataset,
}

/// The data directory: the command-line flag if given, else the `RINGNN_DATA` environment
/// variable if set and non-empty, else `None` (callers then fall back to synthetic data).
pub fn data_dir(cli: Option<&Path>) -> Option<PathBuf> {
    data_dir_from(cli, std::env::var_os(DATA_ENV))
}

/// [`data_dir`] with the environment passed in, so tests need not mutate it.
fn data_dir_from(cli: Option<&Path>, env: Option<std::ffi::OsString>) -> Option<PathBuf> {
    match (cli, env) {
        (Some(dir), _) => Some(dir.to_path_buf()),
        (None, Some(v)) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => None,
    }
}

/// Handwritten-digit data: MNIST from `dir` if given, else the synthetic digits
/// (60,000 training and 10,000 test images, like MNIST, drawn from `seed`).
///
/// Both are 1 x 28 x 28 with 10 classes, so a model built for one runs on the other.
pub fn digits(dir: Option<&Path>, seed: u64) -> Result<Split, DataError> {
    match dir {
        Some(dir) => load_mnist(dir),
        None => Ok(synthetic_digits(60_000, 10_000, seed)),
    }
}

/// Mean and standard deviation of each channel.
#[derive(Clone, PartialEq, Debug)]
pub struct ChannelStats {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel (population; a constant channel gets 1 so that
    /// normalising it only centres it).
    pub std: Vec<f32>,
}

impl ChannelStats {
    /// The statistics of `data`, accumulated in f64.
    pub fn of(data: &Dataset) -> ChannelStats {
        let c = data.shape.channels;
        let plane = data.shape.plane();
        let mut sum = vec![0.0f64; c];
        let mut sum_sq = vec![0.0f64; c];
        if plane > 0 {
            for image in data.images.chunks_exact(data.shape.len()) {
                for (ch, values) in image.chunks_exact(plane).enumerate() {
                    for &v in values {
                        let v = f64::from(v);
                        sum[ch] += v;
                        sum_sq[ch] += v * v;
                    }
                }
            }
        }
        let count = (data.len() * plane) as f64;
        let mut mean = Vec::with_capacity(c);
        let mut std = Vec::with_capacity(c);
        for ch in 0..c {
            let (m, s) = if count > 0.0 {
                let m = sum[ch] / count;
                let var = (sum_sq[ch] / count - m * m).max(0.0);
                (m, var.sqrt())
            } else {
                (0.0, 1.0)
            };
            mean.push(m as f32);
            // A channel with no spread is left unscaled rather than blown up by 1/0.
            std.push(if s > 1e-6 { s as f32 } else { 1.0 });
        }
        ChannelStats { mean, std }
    }

    /// Maps each value `x` of channel `c` to `(x - mean[c]) / std[c]`.
    ///
    /// # Panics
    /// If `data` does not have as many channels as these statistics.
    pub fn apply(&self, data: &mut Dataset) {
        assert_eq!(data.shape.channels, self.mean.len(), "channel count");
        let plane = data.shape.plane();
        if plane == 0 {
            return;
        }
        let n = data.shape.len();
        for image in data.images.chunks_exact_mut(n) {
            for (ch, values) in image.chunks_exact_mut(plane).enumerate() {
                let (m, inv) = (self.mean[ch], 1.0 / self.std[ch]);
                for v in values {
                    *v = (*v - m) * inv;
                }
            }
        }
    }
}

/// Per-channel normalisation: statistics from the training split, applied to both, so
/// that the test set is transformed exactly as the model's inputs were in training.
///
/// # Panics
/// If the two splits have different channel counts.
pub fn normalise(split: &mut Split) -> ChannelStats {
    let stats = ChannelStats::of(&split.train);
    stats.apply(&mut split.train);
    stats.apply(&mut split.test);
    stats
}

/// Reads a whole file, decompressing it if it is gzip (recognised by its magic bytes, so
/// a misnamed file still reads), up to [`MAX_DECOMPRESSED`] bytes.
pub fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    read_file_capped(path, MAX_DECOMPRESSED)
}

/// A file opened for reading: raw, or through a streaming gzip decoder, with the count of
/// bytes handed out so far (for messages).
pub struct DataReader {
    inner: Box<dyn Read>,
    path: PathBuf,
    gzip: bool,
    taken: u64,
}

impl DataReader {
    /// Opens `path`, through a gzip decoder if it starts with the gzip magic number.
    ///
    /// # Errors
    /// The file cannot be opened or read.
    pub fn open(path: &Path) -> Result<DataReader, DataError> {
        let f = std::fs::File::open(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        DataReader::over(std::io::BufReader::new(f), path)
    }

    /// Reads `raw` (named `path` in messages), through a gzip decoder if it starts with
    /// the gzip magic number.
    ///
    /// # Errors
    /// The first bytes cannot be read.
    pub fn over(mut raw: impl Read + 'static, path: &Path) -> Result<DataReader, DataError> {
        let mut magic = [0u8; 2];
        let mut n = 0;
        while n < 2 {
            match raw.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(source) => {
                    return Err(DataError::Io {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        }
        let gzip = n == 2 && magic == [0x1f, 0x8b];
        let raw = std::io::Cursor::new(magic[..n].to_vec()).chain(raw);
        // Multi-member, because `cat a.gz b.gz` is a valid gzip file.
        let inner: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        Ok(DataReader {
            inner,
            path: path.to_path_buf(),
            gzip,
            taken: 0,
        })
    }

    /// Appends up to `max` more bytes to `out`; stops early at the end of the file.
    ///
    /// # Errors
    /// A read or gzip error, naming the file and how far it got.
    pub fn read_up_to(&mut self, max: u64, out: &mut Vec<u8>) -> Result<(), DataError> {
        let before = out.len();
        let got = (&mut self.inner).take(max).read_to_end(out);
        self.taken += (out.len() - before) as u64;
        got.map(|_| ()).map_err(|source| {
            if self.gzip {
                DataError::Gzip {
                    path: self.path.clone(),
                    decoded: self.taken,
                    source,
                }
            } else {
                DataError::Io {
                    path: self.path.clone(),
                    source,
                }
            }
        })
    }

    /// Reads the rest of the file, refusing it once it passes `limit` bytes in all.
    ///
    /// # Errors
    /// As [`DataReader::read_up_to`], or [`DataError::TooLarge`].
    pub fn read_rest_capped(&mut self, limit: u64, out: &mut Vec<u8>) -> Result<(), DataError> {
        let room = limit.saturating_sub(self.taken);
        self.read_up_to(room.saturating_add(1), out)?;
        if self.taken > limit {
            return Err(DataError::TooLarge {
                path: self.path.clone(),
                limit,
                gzip: self.gzip,
            });
        }
        Ok(())
    }
}

/// Reads a whole file like [`read_file`], refusing it once it passes `limit` bytes (after
/// decompression), before more memory is spent.
///
/// # Errors
/// The file cannot be read, a broken gzip stream, or [`DataError::TooLarge`].
pub fn read_file_capped(path: &Path, limit: u64) -> Result<Vec<u8>, DataError> {
    let mut r = DataReader::open(path)?;
    let mut out = Vec::new();
    r.read_rest_capped(limit, &mut out)?;
    Ok(out)
}

/// Decompresses `bytes` if they start with the gzip magic number, else returns them as
/// they are, up to [`MAX_DECOMPRESSED`] bytes. `name` is for messages.
pub fn gunzip_if_needed(bytes: Vec<u8>, name: &Path) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    DataReader::over(std::io::Cursor::new(bytes), name)?
        .read_rest_capped(MAX_DECOMPRESSED, &mut out)?;
    Ok(out)
}

/// The first existing file among `dir/name` and `dir/name.gz`, for each dir in `dirs`
/// and each name in `names`, in that order; else [`DataError::Missing`] listing them all.
pub fn find_file(dirs: &[PathBuf], names: &[&str], what: &str) -> Result<PathBuf, DataError> {
    let mut tried = Vec::new();
    for dir in dirs {
        for name in names {
            for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
                if candidate.is_file() {
                    return Ok(candidate);
                }
                tried.push(candidate);
            }
        }
    }
    Err(DataError::Missing {
        what: what.to_string(),
        tried,
    })
}

/// `dir` itself, then each of `subdirs` under it: data may be given as the dataset's own
/// folder or as a folder of datasets (like `../shared/data`).
fn candidate_dirs(dir: &Path, subdirs: &[&str]) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(subdirs.iter().map(|s| dir.join(s)));
    dirs
}

/// Builds the error for a file shorter than `expected`.
fn truncated(name: &Path, offset: usize, expected: usize, actual: usize) -> DataError {
    DataError::Truncated {
        path: name.to_path_buf(),
        offset: offset as u64,
        expected: expected as u64,
        actual: actual as u64,
    }
}
