//! English-French sentence pairs from Tatoeba, turned into token ids for a small
//! sequence-to-sequence model.
//!
//! The file is UTF-8 text, one pair a line: `english<TAB>french<TAB>attribution` (the
//! attribution, which the CC BY licence requires the file to keep, is ignored here). Blank
//! lines and a leading byte-order mark are skipped; a line that is not UTF-8 or lacks a
//! sentence is an error naming the line and its byte offset.
//!
//! # Tokeniser
//! Each sentence is lower-cased (Unicode, so `É` becomes `é`), typographic apostrophes
//! (`’`, `‘`) become `'`, and the text is cut into tokens: a maximal run of alphanumeric
//! characters (Unicode letters and digits, so `été` and `garçon` stay whole) is a word;
//! every other character that is not white space is a token of its own. So
//! `"Qu'est-ce que c'est ?"` becomes `qu ' est - ce que c ' est ?`. French puts a
//! (non-breaking) space before `?` and `!`, English does not; both give the same tokens.
//! Control characters and zero-width marks are dropped.
//!
//! # Split and vocabulary
//! Pairs longer than [`TextConfig::max_len`] tokens on either side are dropped. A pair
//! goes to the test set when a seeded hash of its English token sequence falls below
//! [`TextConfig::test_fraction`]: the split does not depend on line order, and all the
//! translations of one English sentence (Tatoeba has many) fall on the same side, so the
//! test set never holds a source sentence seen in training. Each vocabulary is built from
//! the training pairs alone: the special tokens [`PAD`], [`BOS`], [`EOS`], [`UNK`] (ids
//! 0..4), then the tokens seen at least [`TextConfig::min_count`] times, most frequent
//! first (ties in code-point order), up to [`TextConfig::max_vocab`] entries in all; any
//! other token is [`UNK`].

use super::{candidate_dirs, find_file, read_file, DataError};
use std::collections::HashMap;
use std::path::Path;

/// Padding, id 0.
pub const PAD: u32 = 0;
/// Beginning of sequence, id 1.
pub const BOS: u32 = 1;
/// End of sequence, id 2.
pub const EOS: u32 = 2;
/// A token outside the vocabulary, id 3.
pub const UNK: u32 = 3;
/// The spellings of the special tokens, by id.
pub const SPECIALS: [&str; 4] = ["<pad>", "<bos>", "<eos>", "<unk>"];

/// How sentence pairs become token ids.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct TextConfig {
    /// Pairs with more tokens than this on either side (not counting BOS and EOS) are
    /// dropped.
    pub max_len: usize,
    /// A token must occur this many times in the training pairs to enter a vocabulary.
    pub min_count: usize,
    /// Largest vocabulary size, the four special tokens included.
    pub max_vocab: usize,
    /// Fraction of pairs (by distinct English sentence) held out for testing, in [0, 1].
    pub test_fraction: f64,
    /// Seed of the split's hash.
    pub seed: u64,
}

impl Default for TextConfig {
    /// Sentences of up to 10 tokens, every token seen twice, vocabularies of up to 4,000,
    /// 10% held out, seed 0.
    fn default() -> Self {
        TextConfig {
            max_len: 10,
            min_count: 2,
            max_vocab: 4000,
            test_fraction: 0.1,
            seed: 0,
        }
    }
}

/// Splits a sentence into tokens, as the module docs describe.
pub fn tokenize(sentence: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for ch in sentence.chars().flat_map(char::to_lowercase) {
        let ch = match ch {
            '\u{2019}' | '\u{2018}' => '\'',
            c => c,
        };
        if ch.is_alphanumeric() {
            word.push(ch);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        let invisible = ch.is_control() || matches!(ch, '\u{200b}'..='\u{200d}' | '\u{feff}');
        if !ch.is_whitespace() && !invisible {
            tokens.push(ch.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// A vocabulary: token spellings by id, and ids by spelling.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// The vocabulary of `sentences` (already tokenised): the special tokens, then each
    /// token seen at least `min_count` times, most frequent first, ties in code-point
    /// order, `max_size` entries at most (never fewer than the four special tokens).
    pub fn build<'a, I>(sentences: I, min_count: usize, max_size: usize) -> Vocab
    where
        I: IntoIterator<Item = &'a [String]>,
    {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for sentence in sentences {
            for t in sentence {
                *counts.entry(t.as_str()).or_default() += 1;
            }
        }
        let mut ranked: Vec<(&str, usize)> = counts
            .into_iter()
            .filter(|&(t, n)| n >= min_count && !SPECIALS.contains(&t))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let room = max_size.saturating_sub(SPECIALS.len());
        let tokens: Vec<String> = SPECIALS
            .iter()
            .copied()
            .chain(ranked.into_iter().take(room).map(|(t, _)| t))
            .map(String::from)
            .collect();
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Vocab { tokens, ids }
    }

    /// Number of entries, special tokens included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: the special tokens are always there.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of `token`, or [`UNK`].
    pub fn id(&self, token: &str) -> u32 {
        self.ids.get(token).copied().unwrap_or(UNK)
    }

    /// The spelling of `id`, if it is in the vocabulary.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The ids of `tokens`.
    pub fn encode(&self, tokens: &[String]) -> Vec<u32> {
        tokens.iter().map(|t| self.id(t)).collect()
    }

    /// The tokens of `ids` joined by spaces, skipping padding; an unknown id prints as
    /// `<unk>`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let words: Vec<&str> = ids
            .iter()
            .filter(|&&id| id != PAD)
            .map(|&id| self.token(id).unwrap_or(SPECIALS[UNK as usize]))
            .collect();
        words.join(" ")
    }
}

/// One sentence pair as token ids, without BOS or EOS (the model adds them where it
/// needs them).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Pair {
    /// The English sentence, in the source vocabulary.
    pub src: Vec<u32>,
    /// The French sentence, in the target vocabulary.
    pub tgt: Vec<u32>,
}

/// Sentence pairs ready for training.
#[derive(Clone, PartialEq, Debug)]
pub struct Corpus {
    /// Where the pairs came from, for messages.
    pub name: String,
    /// The English vocabulary.
    pub src_vocab: Vocab,
    /// The French vocabulary.
    pub tgt_vocab: Vocab,
    /// The training pairs, in file order.
    pub train: Vec<Pair>,
    /// The test pairs, in file order.
    pub test: Vec<Pair>,
    /// How many pairs the file holds.
    pub pairs_read: usize,
    /// How many of them were dropped for exceeding the length limit.
    pub too_long: usize,
}

/// The (English, French) sentences of a Tatoeba file held in `bytes`, trimmed, in file
/// order; `name` is for messages.
pub fn parse_pairs(bytes: &[u8], name: &Path) -> Result<Vec<(String, String)>, DataError> {
    let mut pairs = Vec::new();
    let mut start = 0usize;
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = index as u64 + 1;
        let line_start = start;
        start += raw.len() + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| DataError::BadUtf8 {
            path: name.to_path_buf(),
            line: line_no,
            offset: (line_start + e.valid_up_to()) as u64,
        })?;
        let line = if index == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |what: String| DataError::Malformed {
            path: name.to_path_buf(),
            line: line_no,
            offset: line_start as u64,
            what,
        };
        let mut fields = line.split('\t');
        let (Some(en), Some(fr)) = (fields.next(), fields.next()) else {
            return Err(malformed(
                "expected english<TAB>french<TAB>attribution, found no tab".to_string(),
            ));
        };
        let (en, fr) = (en.trim(), fr.trim());
        if en.is_empty() || fr.is_empty() {
            let side = if en.is_empty() { "English" } else { "French" };
            return Err(malformed(format!("empty {side} sentence")));
        }
        pairs.push((en.to_string(), fr.to_string()));
    }
    Ok(pairs)
}

/// FNV-1a of `bytes` from a seeded start, finished by SplitMix64's mixer so that nearby
/// seeds give unrelated splits. This is not a checksum but the definition of the
/// train/test split: every recorded seq2seq figure depends on it, so it stays as it was
/// (a CRC-32 would move pairs between the sides). Written out rather than taken from
/// `std` because std's hasher may change between Rust versions, and the split must not.
fn split_hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A corpus from the bytes of a Tatoeba file, as the module docs describe; `name` is for
/// messages.
pub fn corpus_from_bytes(bytes: &[u8], name: &Path, cfg: &TextConfig) -> Result<Corpus, DataError> {
    let pairs = parse_pairs(bytes, name)?;
    let pairs_read = pairs.len();
    // Compared in u128 so that a fraction of 1 puts every pair in the test set.
    let threshold = (cfg.test_fraction.clamp(0.0, 1.0) * 18_446_744_073_709_551_616.0) as u128;
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut too_long = 0;
    for (en, fr) in &pairs {
        let (src, tgt) = (tokenize(en), tokenize(fr));
        if src.len() > cfg.max_len || tgt.len() > cfg.max_len {
            too_long += 1;
            continue;
        }
        let key = src.join(" ");
        if u128::from(split_hash(cfg.seed, key.as_bytes())) < threshold {
            test.push((src, tgt));
        } else {
            train.push((src, tgt));
        }
    }
    let src_vocab = Vocab::build(
        train.iter().map(|p| p.0.as_slice()),
        cfg.min_count,
        cfg.max_vocab,
    );
    let tgt_vocab = Vocab::build(
        train.iter().map(|p| p.1.as_slice()),
        cfg.min_count,
        cfg.max_vocab,
    );
    let encode = |pairs: Vec<(Vec<String>, Vec<String>)>| -> Vec<Pair> {
        pairs
            .iter()
            .map(|(s, t)| Pair {
                src: src_vocab.encode(s),
                tgt: tgt_vocab.encode(t),
            })
            .collect()
    };
    let (train, test) = (encode(train), encode(test));
    Ok(Corpus {
        name: name.display().to_string(),
        src_vocab,
        tgt_vocab,
        train,
        test,
        pairs_read,
        too_long,
    })
}

/// The Tatoeba English-French pairs from `dir` (or its `tatoeba/` subfolder): the first
/// of `eng-fra_first5000.txt`, `eng-fra.txt`, `fra.txt` found, raw or `.gz`.
pub fn load_tatoeba(dir: &Path, cfg: &TextConfig) -> Result<Corpus, DataError> {
    let dirs = candidate_dirs(dir, &["tatoeba", "fra-eng"]);
    let path = find_file(
        &dirs,
        &["eng-fra_first5000.txt", "eng-fra.txt", "fra.txt"],
        "Tatoeba English-French pairs",
    )?;
    corpus_from_bytes(&read_file(&path)?, &path, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #1 (a) & #2 (b)\n\
        Go.\tMarche.\tCC-BY\n\
        Hi.\tSalut !\tCC-BY\r\n\
        \n\
        I'm cold.\tJ\u{2019}ai froid.\tCC-BY\n\
        Is it summer?\tEst-ce l'été\u{a0}?\tCC-BY\n\
        I see a boy.\tJe vois un garçon.\tCC-BY\n\
        He's a boy.\tC'est un garçon.\tCC-BY\n\
        This sentence is much too long for the limit.\tCette phrase est bien trop longue pour la limite.\tCC-BY\n";

    #[test]
    fn tokeniser_splits_punctuation_and_keeps_accents() {
        assert_eq!(
            tokenize("Qu\u{2019}est-ce que C'EST\u{202f}? Été, garçon!"),
            [
                "qu", "'", "est", "-", "ce", "que", "c", "'", "est", "?", "été", ",", "garçon", "!"
            ]
        );
        assert_eq!(tokenize("  \t"), Vec::<String>::new());
        assert_eq!(tokenize("3.5\u{200b}km"), ["3", ".", "5", "km"]);
    }

    #[test]
    fn vocabulary_orders_by_count_and_respects_limits() {
        let s: Vec<Vec<String>> = [["b", "a", "a"], ["c", "a", "b"]]
            .iter()
            .map(|x| x.iter().map(|t| t.to_string()).collect())
            .collect();
        let v = Vocab::build(s.iter().map(Vec::as_slice), 1, 100);
        assert_eq!(v.len(), 7);
        assert_eq!(
            (
                v.id("<pad>"),
                v.id("<unk>"),
                v.id("a"),
                v.id("b"),
                v.id("c")
            ),
            (0, 3, 4, 5, 6)
        );
        assert_eq!(v.id("zzz"), UNK);
        let v = Vocab::build(s.iter().map(Vec::as_slice), 2, 100);
        assert_eq!((v.len(), v.id("c")), (6, UNK));
        let v = Vocab::build(s.iter().map(Vec::as_slice), 1, 5);
        assert_eq!((v.len(), v.id("b")), (5, UNK));
        let v = Vocab::build(s.iter().map(Vec::as_slice), 1, 0);
        assert_eq!(v.len(), 4);
        assert_eq!(v.decode(&[1, 0, 99, 2]), "<bos> <unk> <eos>");
    }

    #[test]
    fn corpus_from_a_small_tsv() {
        let cfg = TextConfig {
            max_len: 8,
            min_count: 1,
            max_vocab: 100,
            test_fraction: 0.0,
            seed: 0,
        };
        let c = corpus_from_bytes(SAMPLE.as_bytes(), Path::new("s.tsv"), &cfg).unwrap();
        assert_eq!(
            (c.pairs_read, c.too_long, c.train.len(), c.test.len()),
            (8, 1, 7, 0)
        );
        assert_eq!(c.src_vocab.decode(&c.train[0].src), "go .");
        assert_eq!(c.tgt_vocab.decode(&c.train[0].tgt), "va !");
        assert_eq!(c.tgt_vocab.decode(&c.train[3].tgt), "j ' ai froid .");
        assert_eq!(c.tgt_vocab.decode(&c.train[4].tgt), "est - ce l ' été ?");
        assert!(c
            .train
            .iter()
            .all(|p| !p.src.contains(&UNK) && !p.tgt.contains(&UNK)));

        let all_test = TextConfig {
            test_fraction: 1.0,
            ..cfg
        };
        let c = corpus_from_bytes(SAMPLE.as_bytes(), Path::new("s.tsv"), &all_test).unwrap();
        assert_eq!((c.train.len(), c.test.len(), c.src_vocab.len()), (0, 7, 4));
        assert!(c.test.iter().all(|p| p.src.iter().all(|&t| t == UNK)));
    }

    #[test]
    fn split_is_seeded_and_keeps_translations_together() {
        // Many translations of few sentences: every sentence's pairs land on one side.
        let mut tsv = String::new();
        for i in 0..200 {
            tsv.push_str(&format!("sentence {}\tphrase {i}\tx\n", i % 40));
        }
        let cfg = TextConfig {
            max_len: 5,
            min_count: 1,
            test_fraction: 0.3,
            ..TextConfig::default()
        };
        let c = corpus_from_bytes(tsv.as_bytes(), Path::new("t"), &cfg).unwrap();
        assert_eq!(c.train.len() + c.test.len(), 200);
        assert!((20..100).contains(&c.test.len()), "{}", c.test.len());
        assert_eq!(
            c.train.len() % 5,
            0,
            "translations of a sentence stay together"
        );
        let unk_sources = c.test.iter().filter(|p| p.src.contains(&UNK)).count();
        assert_eq!(
            unk_sources,
            c.test.len(),
            "no test source sentence is in the training set"
        );
        let again = corpus_from_bytes(tsv.as_bytes(), Path::new("t"), &cfg).unwrap();
        assert_eq!(c, again);
        let other = corpus_from_bytes(
            tsv.as_bytes(),
            Path::new("t"),
            &TextConfig { seed: 1, ..cfg },
        )
        .unwrap();
        let train_sources = |c: &Corpus| -> std::collections::BTreeSet<String> {
            c.train.iter().map(|p| c.src_vocab.decode(&p.src)).collect()
        };
        assert_ne!(train_sources(&c), train_sources(&other));
    }

    /// The split is part of a run's definition: pinned, so that a change of hash is seen.
    #[test]
    fn split_hash_is_pinned() {
        assert_eq!(split_hash(0, b"sentence 1"), 0x90c1_47dc_0e34_ca5f);
        assert_eq!(split_hash(7, b"hello world"), 0x2268_1935_4a34_048f);
    }

    #[test]
    fn errors_name_line_and_offset() {
        let e = parse_pairs(b"a\tb\tc\nno tab here\n", Path::new("f.txt")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.txt: line 2: byte 6: expected english<TAB>french<TAB>attribution, found no tab"
        );
        let e = parse_pairs(b"a\tb\n\t\xc3\xa9t\xe9\n", Path::new("f.txt")).unwrap_err();
        assert_eq!(e.to_string(), "f.txt: line 2: byte 8: invalid UTF-8");
        let e = parse_pairs(b"a\t \tc\n", Path::new("f.txt")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.txt: line 1: byte 0: empty French sentence"
        );
        let ok = parse_pairs(b"\xef\xbb\xbfa\tb", Path::new("f.txt")).unwrap();
        assert_eq!(ok, vec![("a".to_string(), "b".to_string())]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = corpus_from_bytes(&bytes, Path::new("x"), &TextConfig::default());
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}(\t\\PC{0,40}){0,3}(\n\\PC{0,30}\t\\PC{0,30}){0,5}") {
            let _ = corpus_from_bytes(text.as_bytes(), Path::new("x"), &TextConfig { min_count: 1, ..TextConfig::default() });
            let _ = tokenize(&text);
        }
    }
}
