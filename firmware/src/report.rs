//! The report: the text lines the firmware logs, written to any [`embedded_io::Write`].
//!
//! The sink is generic (the embedded-hal project's I/O trait, which took over serial output
//! in embedded-hal 1.0), so the same formatting serves the device, where [`LineSink`] hands
//! each complete line to defmt, and the host tests and `examples/checkpoints.rs`, which
//! write into memory or stdout. Every line starts with a keyword that the test script
//! greps for:
//!
//! - `CALIB ticks/instr=<r> overhead=<ticks>`: the tick counter's calibration.
//! - `ROW <fn> <name> f=<f> | i64 abs= rel= dev= ovf= | q32 abs= rel= dev= wrap= ring32=
//!   diff=`: errors (see [`crate::study`]); `wrap`/`ring32`/`diff` count grid points.
//!   ROW lines carry no timing, so the host reproduces them bit for bit.
//! - `COST <fn> <name> f=<f> | i64= q32= f32= instr/elem`: instructions per element.
//! - `FLOAT micromath <fn> | abs= rel= instr/elem=`: an `f32` library for comparison.
//! - `CHECK FAIL <fn> <name> f=<f> <violation>`: a row that failed its checks.
//! - `MODEL data=<d> f=<f> layers=<784-128-128-10> params=<n> macs=<n> inputs=<n>`: the
//!   exported model the firmware runs (see [`crate::infer`]), or `MODEL none ...` when it
//!   was built without one.
//! - `INFER i=<i> pred=<class> hash=<0x..> | want=<class> label=<l> bits=<equal|differ>
//!   instr=<n> | <PASS|FAIL>`: one inference against the host's; the part before `|` is what
//!   the host's export prints for the same input.
//! - `INFER <PASS|FAIL> <k>/<n> ...`: the inferences that equal the host's, with the
//!   instructions per inference.

use crate::infer::Outcome;
use crate::study::{FloatRow, Row, Violation};
use crate::ticks::Calibration;
use embedded_io::{ErrorType, Write, WriteFmtError};

/// Error of a report write: the sink's error, or a formatting error.
pub type ReportError<W> = WriteFmtError<<W as ErrorType>::Error>;

/// Writes the calibration line.
///
/// # Errors
/// What the sink reports.
pub fn write_calibration<W: Write>(w: &mut W, c: &Calibration) -> Result<(), ReportError<W>> {
    writeln!(
        w,
        "CALIB ticks/instr={:.4} overhead={}",
        c.ticks_per_instr, c.overhead_ticks
    )
}

/// Writes a row's errors.
///
/// # Errors
/// What the sink reports.
pub fn write_row<W: Write>(w: &mut W, r: &Row) -> Result<(), ReportError<W>> {
    writeln!(
        w,
        "ROW {} {} f={} | i64 abs={:.3e} rel={:.3e} dev={:.3e} ovf={} | q32 abs={:.3e} rel={:.3e} dev={:.3e} wrap={} ring32={} diff={}",
        r.func.function(),
        r.func.name(),
        r.f,
        r.i64.abs,
        r.i64.rel,
        r.i64.dev,
        r.i64_overflows,
        r.q32.abs,
        r.q32.rel,
        r.q32.dev,
        r.q32_wrapped,
        r.ring32_wrapped,
        r.q32_differs_unwrapped,
    )
}

/// Writes a row's instructions per element.
///
/// # Errors
/// What the sink reports.
pub fn write_cost<W: Write>(w: &mut W, r: &Row, c: &Calibration) -> Result<(), ReportError<W>> {
    let per = |ticks: u64| c.instructions(ticks, r.costs.calls) / r.points as f64;
    writeln!(
        w,
        "COST {} {} f={} | i64={:.1} q32={:.1} f32={:.1} instr/elem",
        r.func.function(),
        r.func.name(),
        r.f,
        per(r.costs.i64_ticks),
        per(r.costs.q32_ticks),
        per(r.costs.f32_ticks),
    )
}

/// Writes an `f32` library's figures.
///
/// # Errors
/// What the sink reports.
pub fn write_float<W: Write>(
    w: &mut W,
    r: &FloatRow,
    c: &Calibration,
) -> Result<(), ReportError<W>> {
    writeln!(
        w,
        "FLOAT micromath {} | abs={:.3e} rel={:.3e} instr/elem={:.1}",
        r.function,
        r.errors.abs,
        r.errors.rel,
        c.instructions(r.ticks, r.calls) / r.points as f64,
    )
}

/// Writes a failed check.
///
/// # Errors
/// What the sink reports.
pub fn write_violation<W: Write>(w: &mut W, r: &Row, v: &Violation) -> Result<(), ReportError<W>> {
    writeln!(
        w,
        "CHECK FAIL {} {} f={} {:?}",
        r.func.function(),
        r.func.name(),
        r.f,
        v
    )
}

/// Writes the line describing the exported model.
///
/// # Errors
/// What the sink reports.
pub fn write_model<W: Write>(
    w: &mut W,
    data: &str,
    frac_bits: u32,
    sizes: &[usize],
    params: usize,
    macs: usize,
    inputs: usize,
) -> Result<(), ReportError<W>> {
    write!(w, "MODEL data={data} f={frac_bits} layers=")?;
    for (i, n) in sizes.iter().enumerate() {
        if i > 0 {
            w.write_all(b"-").map_err(WriteFmtError::Other)?;
        }
        write!(w, "{n}")?;
    }
    writeln!(w, " params={params} macs={macs} inputs={inputs}")
}

/// Writes one inference's outcome and its instruction count.
///
/// # Errors
/// What the sink reports.
pub fn write_infer<W: Write>(
    w: &mut W,
    o: &Outcome,
    instructions: f64,
) -> Result<(), ReportError<W>> {
    writeln!(
        w,
        "INFER i={} pred={} hash={:#010x} | want={} label={} bits={} instr={:.0} | {}",
        o.index,
        o.predicted,
        o.hash,
        o.expected,
        o.label,
        if o.bits_equal { "equal" } else { "differ" },
        instructions,
        if o.pass() { "PASS" } else { "FAIL" }
    )
}

/// Instructions per inference over a run: the least, the mean and the most.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct InferCost {
    /// Fewest instructions of one inference.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Most.
    pub max: f64,
}

/// Writes the summary of the inferences: `passed` of `total` equal the host's; `correct`
/// predictions match the true label.
///
/// # Errors
/// What the sink reports.
pub fn write_infer_summary<W: Write>(
    w: &mut W,
    passed: usize,
    total: usize,
    correct: usize,
    cost: &InferCost,
) -> Result<(), ReportError<W>> {
    writeln!(
        w,
        "INFER {} {passed}/{total} equal the host's logits and classes; {correct}/{total} correct; instr/inference min={:.0} mean={:.0} max={:.0}",
        if passed == total && total > 0 { "PASS" } else { "FAIL" },
        cost.min,
        cost.mean,
        cost.max
    )
}

/// Longest line [`LineSink`] holds; longer lines are cut there (and flagged).
pub const LINE_CAP: usize = 192;

/// An [`embedded_io::Write`] that collects bytes into lines and hands each complete line
/// (without its newline) to `emit`: defmt logs whole strings, so the firmware's sink
/// buffers a line before logging it.
pub struct LineSink<F: FnMut(&str)> {
    line: heapless::Vec<u8, LINE_CAP>,
    truncated: bool,
    emit: F,
}

impl<F: FnMut(&str)> LineSink<F> {
    /// A sink that calls `emit` once per line.
    pub fn new(emit: F) -> Self {
        LineSink {
            line: heapless::Vec::new(),
            truncated: false,
            emit,
        }
    }

    /// Whether some line was longer than [`LINE_CAP`] and was cut.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn emit_line(&mut self) {
        // The report writes ASCII only, so this cannot fail except for a line cut inside
        // a multi-byte character, which is then left out up to the cut.
        let s = match core::str::from_utf8(&self.line) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.line[..e.valid_up_to()]).unwrap_or(""),
        };
        (self.emit)(s);
        self.line.clear();
    }
}

impl<F: FnMut(&str)> ErrorType for LineSink<F> {
    type Error = core::convert::Infallible;
}

impl<F: FnMut(&str)> Write for LineSink<F> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &b in buf {
            if b == b'\n' {
                self.emit_line();
            } else if self.line.push(b).is_err() {
                self.truncated = true;
            }
        }
        Ok(buf.len())
    }

    /// Emits a pending partial line.
    fn flush(&mut self) -> Result<(), Self::Error> {
        if !self.line.is_empty() {
            self.emit_line();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::func::Func;
    use crate::infer::Outcome;
    use crate::study::{Costs, Errors};
    use ringnn_core::approx::ExpApprox;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn row() -> Row {
        Row {
            func: Func::Exp(ExpApprox::Pwl(4)),
            f: 16,
            points: 1000,
            max_exact: 54.6,
            i64: Errors {
                abs: 32.43,
                rel: 0.5,
                dev: 1.5e-5,
            },
            i64_overflows: 0,
            q32: Errors {
                abs: 32.43,
                rel: 0.5,
                dev: 1.5e-5,
            },
            q32_wrapped: 0,
            ring32_wrapped: 700,
            q32_differs_unwrapped: 0,
            costs: Costs {
                i64_ticks: 16_000 + 10 * 4,
                q32_ticks: 8_000 + 10 * 4,
                f32_ticks: 4_000 + 10 * 4,
                calls: 10,
            },
        }
    }

    fn lines_of(write: impl FnOnce(&mut LineSink<&mut dyn FnMut(&str)>)) -> Vec<String> {
        let mut lines = Vec::new();
        let mut push = |s: &str| lines.push(s.to_string());
        let mut sink = LineSink::new(&mut push as &mut dyn FnMut(&str));
        write(&mut sink);
        sink.flush().unwrap();
        lines
    }

    #[test]
    fn rows_and_costs_have_the_documented_shape() {
        let cal = Calibration {
            ticks_per_instr: 1.6,
            overhead_ticks: 4,
        };
        let lines = lines_of(|s| {
            write_calibration(s, &cal).unwrap();
            write_row(s, &row()).unwrap();
            write_cost(s, &row(), &cal).unwrap();
        });
        assert_eq!(lines[0], "CALIB ticks/instr=1.6000 overhead=4");
        assert_eq!(
            lines[1],
            "ROW exp pwl4 f=16 | i64 abs=3.243e1 rel=5.000e-1 dev=1.500e-5 ovf=0 | q32 abs=3.243e1 rel=5.000e-1 dev=1.500e-5 wrap=0 ring32=700 diff=0"
        );
        // 16 000 ticks / 1.6 = 10 000 instructions over 1000 points.
        assert_eq!(
            lines[2],
            "COST exp pwl4 f=16 | i64=10.0 q32=5.0 f32=2.5 instr/elem"
        );
    }

    #[test]
    fn inference_lines_have_the_documented_shape() {
        let o = Outcome {
            index: 3,
            predicted: 7,
            expected: 7,
            label: 2,
            hash: 0xd064_0e06,
            bits_equal: true,
        };
        let lines = lines_of(|s| {
            write_model(
                s,
                "synthetic",
                13,
                &[784, 128, 128, 10],
                118_282,
                118_016,
                16,
            )
            .unwrap();
            write_infer(s, &o, 1_834_567.4).unwrap();
            write_infer(
                s,
                &Outcome {
                    bits_equal: false,
                    hash: 1,
                    ..o
                },
                10.0,
            )
            .unwrap();
            let cost = InferCost {
                min: 1.0e6,
                mean: 1.5e6,
                max: 2.0e6,
            };
            write_infer_summary(s, 16, 16, 14, &cost).unwrap();
            write_infer_summary(s, 15, 16, 14, &cost).unwrap();
        });
        assert_eq!(
            lines[0],
            "MODEL data=synthetic f=13 layers=784-128-128-10 params=118282 macs=118016 inputs=16"
        );
        // The part before the first `|` is what the host's export example prints.
        assert_eq!(
            lines[1],
            "INFER i=3 pred=7 hash=0xd0640e06 | want=7 label=2 bits=equal instr=1834567 | PASS"
        );
        assert_eq!(
            lines[2],
            "INFER i=3 pred=7 hash=0x00000001 | want=7 label=2 bits=differ instr=10 | FAIL"
        );
        assert_eq!(
            lines[3],
            "INFER PASS 16/16 equal the host's logits and classes; 14/16 correct; instr/inference min=1000000 mean=1500000 max=2000000"
        );
        assert!(lines[4].starts_with("INFER FAIL 15/16 "));
        assert!(lines.iter().all(|l| l.len() <= LINE_CAP));
    }

    #[test]
    fn violations_name_the_row() {
        let lines = lines_of(|s| write_violation(s, &row(), &Violation::Overflow64).unwrap());
        assert_eq!(lines, ["CHECK FAIL exp pwl4 f=16 Overflow64"]);
    }

    #[test]
    fn the_line_sink_splits_lines_and_cuts_long_ones() {
        let mut lines = Vec::new();
        let mut sink = LineSink::new(|s: &str| lines.push(s.to_string()));
        sink.write_all(b"ab\ncd").unwrap();
        sink.write_all(b"e\n").unwrap();
        let long = [b'x'; LINE_CAP + 10];
        sink.write_all(&long).unwrap();
        assert!(sink.truncated());
        sink.flush().unwrap();
        drop(sink);
        assert_eq!(lines[0], "ab");
        assert_eq!(lines[1], "cde");
        assert_eq!(lines[2].len(), LINE_CAP);
    }

    /// A sink that fails after `budget` bytes: the error reaches the caller.
    struct Failing {
        budget: usize,
    }
    #[derive(Debug)]
    struct Full;
    impl embedded_io::Error for Full {
        fn kind(&self) -> embedded_io::ErrorKind {
            embedded_io::ErrorKind::OutOfMemory
        }
    }
    impl ErrorType for Failing {
        type Error = Full;
    }
    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Full> {
            if self.budget == 0 {
                return Err(Full);
            }
            let n = buf.len().min(self.budget);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> Result<(), Full> {
            Ok(())
        }
    }

    #[test]
    fn sink_errors_are_returned() {
        let mut w = Failing { budget: 20 };
        assert!(matches!(
            write_row(&mut w, &row()),
            Err(WriteFmtError::Other(Full))
        ));
    }
}
