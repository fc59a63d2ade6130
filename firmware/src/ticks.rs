//! Counting instructions with a tick counter.
//!
//! embedded-hal 1.0 has no timer trait (only `DelayNs`, which waits rather than measures),
//! so the firmware's SysTick sits behind the tiny [`TickCounter`] defined here, and the
//! host tests use a mock.
//!
//! Under QEMU with `-icount shift=N,align=off,sleep=off` the virtual clock advances
//! `2^N` ns per executed instruction, and SysTick counts that virtual clock: its ticks are
//! proportional to *instructions*, not to cycles of a real Cortex-M4 (which would add wait
//! states, pipeline refills after branches, multi-cycle multiplies and divides). The ratio
//! is not assumed: [`calibrate`] measures it on a loop with a known instruction count.

/// A free-running counter of ticks.
pub trait TickCounter {
    /// Starts a measurement.
    fn restart(&mut self);
    /// Ticks since the last [`TickCounter::restart`], or `None` when the counter cannot
    /// tell (it went round more than once).
    fn elapsed(&mut self) -> Option<u32>;
}

/// A measurement that the counter could not take: it lasted too long for its range.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OutOfRange;

/// Runs `work` and returns its result and the ticks it took (the counter's own overhead
/// included: see [`Calibration::overhead_ticks`]).
///
/// # Errors
/// [`OutOfRange`] when the counter went round more than once.
pub fn timed<T: TickCounter + ?Sized, R>(
    counter: &mut T,
    work: impl FnOnce() -> R,
) -> Result<(R, u32), OutOfRange> {
    counter.restart();
    let r = work();
    let t = counter.elapsed().ok_or(OutOfRange)?;
    Ok((r, t))
}

/// Ticks per instruction and the fixed cost of one measurement.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Calibration {
    /// Ticks per executed instruction.
    pub ticks_per_instr: f64,
    /// Ticks an empty measurement reads (the restart and the read themselves).
    pub overhead_ticks: u32,
}

impl Calibration {
    /// Instructions executed by `measurements` timed calls that took `ticks` in all, net of
    /// the measurement overhead.
    pub fn instructions(&self, ticks: u64, measurements: u32) -> f64 {
        let net = ticks.saturating_sub(self.overhead_ticks as u64 * measurements as u64);
        net as f64 / self.ticks_per_instr
    }
}

/// Loop lengths of the calibration: the difference of the two runs cancels the loop's
/// set-up cost.
pub const CALIBRATION_ITERS: (u32, u32) = (10_000, 110_000);

/// Measures ticks per instruction with `run_loop(n)`, which must execute exactly
/// `instr_per_iter * n` instructions plus a constant independent of `n`.
///
/// # Errors
/// [`OutOfRange`] when a measurement does not fit the counter, and when the longer loop
/// does not take more ticks than the shorter one (a counter that does not count).
pub fn calibrate<T: TickCounter + ?Sized>(
    counter: &mut T,
    mut run_loop: impl FnMut(u32),
    instr_per_iter: u32,
) -> Result<Calibration, OutOfRange> {
    // The least of a few empty measurements: the overhead is a constant, more readings
    // only guard against a tick boundary falling inside one of them.
    let mut overhead = u32::MAX;
    for _ in 0..4 {
        overhead = overhead.min(timed(counter, || ())?.1);
    }
    let (n1, n2) = CALIBRATION_ITERS;
    let (_, t1) = timed(counter, || run_loop(n1))?;
    let (_, t2) = timed(counter, || run_loop(n2))?;
    if t2 <= t1 {
        return Err(OutOfRange);
    }
    let instrs = (n2 - n1) as f64 * instr_per_iter as f64;
    Ok(Calibration {
        ticks_per_instr: (t2 - t1) as f64 / instrs,
        overhead_ticks: overhead,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use core::cell::Cell;
    use std::rc::Rc;

    /// A counter driven by a shared virtual instruction clock, as QEMU's `-icount` is:
    /// `ticks = instructions * num / den`, and every read costs `read_cost` instructions.
    #[derive(Clone)]
    pub(crate) struct MockCounter {
        pub clock: Rc<Cell<u64>>,
        pub num: u64,
        pub den: u64,
        pub read_cost: u64,
        pub range: u64,
        start: u64,
    }

    impl MockCounter {
        pub(crate) fn new(num: u64, den: u64) -> Self {
            MockCounter {
                clock: Rc::new(Cell::new(0)),
                num,
                den,
                read_cost: 3,
                range: 1 << 24,
                start: 0,
            }
        }
        fn ticks(&self) -> u64 {
            self.clock.get() * self.num / self.den
        }
        pub(crate) fn run(&self, instrs: u64) {
            self.clock.set(self.clock.get() + instrs);
        }
    }

    impl TickCounter for MockCounter {
        fn restart(&mut self) {
            self.run(self.read_cost);
            self.start = self.ticks();
        }
        fn elapsed(&mut self) -> Option<u32> {
            self.run(self.read_cost);
            let d = self.ticks() - self.start;
            (d < self.range).then_some(d as u32)
        }
    }

    #[test]
    fn calibration_recovers_the_tick_rate_and_overhead() {
        // -icount shift=6 on a 25 MHz SysTick: 64 ns per instruction, 40 ns per tick.
        let mut c = MockCounter::new(64, 40);
        let clock = c.clone();
        let cal = calibrate(&mut c, |n| clock.run(2 * n as u64 + 5), 2).unwrap();
        assert!((cal.ticks_per_instr - 1.6).abs() < 1e-4, "{cal:?}");
        assert!(cal.overhead_ticks <= 5, "{cal:?}");
        // 1000 instructions measured 10 times come back as 10 000 net of overhead.
        let mut total = 0u64;
        for _ in 0..10 {
            let (_, t) = timed(&mut c, || clock.run(1000)).unwrap();
            total += t as u64;
        }
        let n = cal.instructions(total, 10);
        assert!((n - 10_000.0).abs() < 15.0, "{n}");
    }

    #[test]
    fn a_counter_that_does_not_count_is_an_error() {
        let mut c = MockCounter::new(0, 1);
        assert_eq!(calibrate(&mut c, |_| (), 2), Err(OutOfRange));
    }

    #[test]
    fn a_measurement_beyond_the_range_is_an_error() {
        let mut c = MockCounter::new(1, 1);
        let clock = c.clone();
        assert_eq!(timed(&mut c, || clock.run(1 << 25)), Err(OutOfRange));
    }
}
