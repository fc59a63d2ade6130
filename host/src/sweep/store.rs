//! The run store: `runs.jsonl` (the record of truth) and `runs.csv` (flat columns for a
//! spreadsheet, RFC 4180 quoting by the `csv` crate), both in the sweep's folder.
//!
//! Each finished run, successful or not, is appended to both files and flushed before the
//! next result is taken, so an interrupted sweep loses at most the runs that were in
//! flight. A restart reads `runs.jsonl` and skips every key already recorded as `ok`; a
//! failed run is tried again and its new record appended (the table uses the last `ok`
//! record of each key). A line cut short by a crash is skipped with a warning, and the next
//! record starts on a fresh line.
//!
//! A record is read back through `serde_json::Value`, looking fields up by name, so that
//! results with fields this build does not know (a seq2seq run's `perplexity`) are read
//! when present and ignored when absent.

use crate::train::RunHealth;
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The JSON-lines file of a sweep folder.
pub const JSONL: &str = "runs.jsonl";
/// The CSV file of a sweep folder.
pub const CSV: &str = "runs.csv";

/// The CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "key",
    "status",
    "model",
    "data",
    "engine",
    "frac_bits",
    "exp",
    "tanh",
    "grad",
    "seed",
    "epochs",
    "train_samples",
    "test_samples",
    "test_accuracy",
    "perplexity",
    "train_loss",
    "train_seconds",
    "samples_per_sec",
    "overflow_count",
    "wrapped",
    "saturated",
    "empty_rows",
    "recip_out_of_range",
    "label_at_floor",
    "parameters",
    "diverged",
    "mpc_bytes_per_step",
    "mpc_rounds_per_step",
    "error",
];

/// One epoch of a run's history, as far as the plots need it.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochPoint {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: Option<f64>,
}

/// One run as the tables and plots see it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    /// The run key (see [`super::grid::RunSpec::key`]).
    pub key: String,
    /// `true` for status `ok`.
    pub ok: bool,
    /// The error message of a failed run.
    pub error: Option<String>,
    /// Model.
    pub model: String,
    /// Dataset.
    pub data: String,
    /// Engine (`plain`, `float`, `mpc`).
    pub engine: String,
    /// Fractional bits (`None` for float).
    pub frac_bits: Option<u32>,
    /// e^x approximation.
    pub exp: String,
    /// tanh approximation.
    pub tanh: String,
    /// Seed.
    pub seed: u64,
    /// Final test accuracy (fraction).
    pub test_accuracy: Option<f64>,
    /// Final test perplexity, for results that report one (sequence models).
    pub perplexity: Option<f64>,
    /// Final training loss.
    pub train_loss: Option<f64>,
    /// Training throughput.
    pub samples_per_sec: Option<f64>,
    /// Values that wrapped in Z_2^64.
    pub overflow_count: u64,
    /// The run's health counters (Plain runs recorded by a build that counts them).
    pub health: Option<RunHealth>,
    /// Per-epoch history.
    pub history: Vec<EpochPoint>,
    /// The run failed to learn ([`crate::train::result::diverged`]).
    pub diverged: bool,
    /// Two-party runs: both servers' online bytes per training step.
    pub bytes_per_step: Option<f64>,
    /// Two-party runs: rounds per training step.
    pub rounds_per_step: Option<f64>,
}

impl RunRow {
    /// Reads a record (one line of `runs.jsonl`). `None` when it lacks the key or status.
    pub fn from_value(v: &Value) -> Option<RunRow> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let f = |k: &str| v.get(k).and_then(Value::as_f64).filter(|x| x.is_finite());
        let history = v
            .get("history")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|h| {
                        Some(EpochPoint {
                            epoch: h.get("epoch")?.as_u64()? as usize,
                            train_loss: h
                                .get("train_loss")
                                .and_then(Value::as_f64)
                                .filter(|x| x.is_finite()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(RunRow {
            key: s("key")?,
            ok: s("status")? == "ok",
            error: s("error"),
            model: s("model").unwrap_or_default(),
            data: s("data").unwrap_or_default(),
            engine: s("engine").unwrap_or_default(),
            frac_bits: v.get("frac_bits").and_then(Value::as_u64).map(|x| x as u32),
            exp: s("exp").unwrap_or_default(),
            tanh: s("tanh").unwrap_or_default(),
            seed: v.get("seed").and_then(Value::as_u64).unwrap_or(0),
            test_accuracy: f("test_accuracy"),
            perplexity: f("perplexity"),
            train_loss: f("train_loss"),
            samples_per_sec: f("samples_per_sec"),
            overflow_count: v.get("overflow_count").and_then(Value::as_u64).unwrap_or(0),
            health: serde_json::from_value(v.clone()).ok(),
            history,
            diverged: v.get("diverged").and_then(Value::as_bool).unwrap_or(false),
            bytes_per_step: f("mpc_bytes_per_step"),
            rounds_per_step: f("mpc_rounds_per_step"),
        })
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads every well-formed record of `dir/runs.jsonl`, in file order (an absent file is
/// empty). Returns the records and the number of lines that could not be read.
///
/// # Errors
/// The file exists but cannot be read.
pub fn read_records(dir: &Path) -> Result<(Vec<Value>, usize), StoreError> {
    let path = dir.join(JSONL);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io(&path)(e)),
    };
    let (mut out, mut bad) = (Vec::new(), 0);
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(v) if v.get("key").is_some() => out.push(v),
            _ => bad += 1,
        }
    }
    Ok((out, bad))
}

/// The two files of a sweep folder, open for appending.
pub struct Store {
    jsonl: File,
    csv: csv::Writer<File>,
    jsonl_path: PathBuf,
    csv_path: PathBuf,
}

fn open_append(path: &Path) -> Result<File, StoreError> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    // A crash may leave a line without its newline; the next record starts afresh.
    let len = f.metadata().map_err(io(path))?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::End(-1)).map_err(io(path))?;
        f.read_exact(&mut last).map_err(io(path))?;
        if last[0] != b'\n' {
            f.write_all(b"\n").map_err(io(path))?;
        }
    }
    Ok(f)
}

/// A record's field as a CSV cell (unquoted: the writer quotes): empty when absent or
/// null, a string as it is, anything else as JSON.
fn csv_value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn csv_error(path: &Path) -> impl Fn(csv::Error) -> StoreError + '_ {
    move |e| io(path)(e.into())
}

/// Whether `path` is absent, empty, or starts with this build's header.
fn csv_header_current(path: &Path) -> Result<bool, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io(path)(e)),
    };
    let mut first = String::new();
    BufReader::new(file)
        .read_line(&mut first)
        .map_err(io(path))?;
    Ok(first.is_empty() || first.trim_end() == CSV_COLUMNS.join(","))
}

/// Writes `dir/runs.csv` afresh from `dir/runs.jsonl` (the record of truth), in this
/// build's columns: a folder that an older build started gains the new columns for every
/// run instead of rows that disagree with their header. Written to a temporary file and
/// renamed, so a crash leaves the old file or the new one.
fn rewrite_csv(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(CSV);
    let (records, _) = read_records(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(&path))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(tmp.as_file());
    w.write_record(CSV_COLUMNS).map_err(csv_error(&path))?;
    for r in &records {
        let row = CSV_COLUMNS.iter().map(|c| csv_value(r.get(*c)));
        w.write_record(row).map_err(csv_error(&path))?;
    }
    w.flush().map_err(io(&path))?;
    drop(w);
    tmp.as_file().sync_all().map_err(io(&path))?;
    tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
    Ok(())
}

impl Store {
    /// Opens (creating when absent) `dir/runs.jsonl` and `dir/runs.csv`; writes the CSV
    /// header into an empty CSV file.
    ///
    /// # Errors
    /// A file cannot be opened or written.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let jsonl_path = dir.join(JSONL);
        let csv_path = dir.join(CSV);
        let jsonl = open_append(&jsonl_path)?;
        if !csv_header_current(&csv_path)? {
            rewrite_csv(dir)?;
        }
        let file = open_append(&csv_path)?;
        let empty = file.metadata().map_err(io(&csv_path))?.len() == 0;
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        if empty {
            csv.write_record(CSV_COLUMNS)
                .map_err(csv_error(&csv_path))?;
            csv.flush().map_err(io(&csv_path))?;
        }
        Ok(Store {
            jsonl,
            csv,
            jsonl_path,
            csv_path,
        })
    }

    /// Appends one record to both files and flushes them.
    ///
    /// # Errors
    /// A write fails.
    pub fn append(&mut self, record: &Map<String, Value>) -> Result<(), StoreError> {
        let line = serde_json::to_string(record).expect("a JSON map serialises");
        writeln!(self.jsonl, "{line}").map_err(io(&self.jsonl_path))?;
        self.jsonl.flush().map_err(io(&self.jsonl_path))?;
        self.jsonl.sync_data().map_err(io(&self.jsonl_path))?;
        let row = CSV_COLUMNS.iter().map(|c| csv_value(record.get(*c)));
        self.csv
            .write_record(row)
            .map_err(csv_error(&self.csv_path))?;
        self.csv.flush().map_err(io(&self.csv_path))?;
        self.csv.get_ref().sync_data().map_err(io(&self.csv_path))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: a field with a comma, a quote and a newline reads back whole, in its
    /// column, from the CSV file (appended through a reopened store too).
    #[test]
    fn csv_fields_with_commas_quotes_and_newlines_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let nasty = "it failed, \"badly\"\nat line 2\r\nand 3";
        let mut rec = Map::new();
        rec.insert("key".into(), "mlp,plain,f=13".into());
        rec.insert("status".into(), "error".into());
        rec.insert("frac_bits".into(), 13.into());
        rec.insert("test_accuracy".into(), Value::Null);
        rec.insert("error".into(), nasty.into());
        Store::open(dir.path()).unwrap().append(&rec).unwrap();
        rec.insert("key".into(), "second \"run\"".into());
        Store::open(dir.path()).unwrap().append(&rec).unwrap();

        let mut reader = csv::Reader::from_path(dir.path().join(CSV)).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, CSV_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
        for (row, key) in rows.iter().zip(["mlp,plain,f=13", "second \"run\""]) {
            assert_eq!(row.len(), CSV_COLUMNS.len());
            assert_eq!(&row[col("key")], key);
            assert_eq!(&row[col("status")], "error");
            assert_eq!(&row[col("frac_bits")], "13");
            assert_eq!(&row[col("test_accuracy")], "");
            assert_eq!(&row[col("model")], "");
            assert_eq!(&row[col("error")], nasty);
        }
    }

    /// A folder whose CSV an older build wrote (fewer columns) gets its CSV rewritten from
    /// the JSON lines, so every row has this build's columns.
    #[test]
    fn an_old_csv_header_is_rewritten_from_the_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let rec: Map<String, Value> = serde_json::from_str(
            r#"{"key":"a","status":"ok","overflow_count":3,"wrapped":2,"saturated":1,
                "empty_rows":4,"recip_out_of_range":0,"label_at_floor":9}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(JSONL),
            format!("{}\n", serde_json::to_string(&rec).unwrap()),
        )
        .unwrap();
        std::fs::write(dir.path().join(CSV), "key,status,overflow_count\na,ok,3\n").unwrap();
        let mut rec2 = rec.clone();
        rec2.insert("key".into(), "b".into());
        Store::open(dir.path()).unwrap().append(&rec2).unwrap();
        let mut reader = csv::Reader::from_path(dir.path().join(CSV)).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, CSV_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(rows.len(), 2);
        for (row, key) in rows.iter().zip(["a", "b"]) {
            assert_eq!(&row[col("key")], key);
            assert_eq!(&row[col("empty_rows")], "4");
            assert_eq!(&row[col("label_at_floor")], "9");
        }
        let row = RunRow::from_value(&serde_json::to_value(&rec).unwrap()).unwrap();
        let h = row.health.unwrap();
        assert_eq!((h.wrapped, h.empty_rows, h.label_at_floor), (2, 4, 9));
    }

    #[test]
    fn a_row_reads_unknown_and_missing_fields_gracefully() {
        let v: Value = serde_json::from_str(
            r#"{"key":"k","status":"ok","model":"seq2seq","data":"tatoeba","engine":"float",
                "frac_bits":null,"exp":"pwl4","tanh":"hard","seed":2,"test_accuracy":null,
                "perplexity":17.5,"future_field":[1,2],"history":[{"epoch":1,"train_loss":3.0}]}"#,
        )
        .unwrap();
        let r = RunRow::from_value(&v).unwrap();
        assert!(r.ok);
        assert_eq!(r.perplexity, Some(17.5));
        assert_eq!(r.test_accuracy, None);
        assert_eq!(r.frac_bits, None);
        assert_eq!(r.history.len(), 1);
        assert!(RunRow::from_value(&serde_json::json!({"status":"ok"})).is_none());
    }

    #[test]
    fn a_cut_line_is_skipped_and_the_next_record_starts_on_a_new_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join(JSONL),
            "{\"key\":\"a\",\"status\":\"ok\"}\n{\"key\":\"b\",",
        )
        .unwrap();
        let mut s = Store::open(dir).unwrap();
        let mut m = Map::new();
        m.insert("key".into(), "c".into());
        m.insert("status".into(), "error".into());
        m.insert("error".into(), "it failed, badly".into());
        s.append(&m).unwrap();
        let (recs, bad) = read_records(dir).unwrap();
        assert_eq!(bad, 1);
        assert_eq!(recs.len(), 2);
        let csv = std::fs::read_to_string(dir.join(CSV)).unwrap();
        assert!(csv.starts_with("key,status,"));
        assert!(csv.contains("c,error,") && csv.ends_with("\"it failed, badly\"\n"));
    }
}
