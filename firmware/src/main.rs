//! ringnn's kernel on a Cortex-M4F (QEMU's MPS2 AN386): the precision study of
//! [`ringnn_firmware`], logged with defmt over semihosting, with the exit status of the run
//! (0 when every row passed its checks) returned through semihosting.
//!
//! Only the board lives here: SysTick as the [`TickCounter`], the defmt sink, the static
//! buffers, stack measurement, and the panic and fault paths. A panic logs its location and
//! exits with a failure status; a hard fault does the same with the faulting address.
//!
//! After the study, on-device inference: when built with `RINGNN_EXPORT` naming a model
//! exported by the host (see `build.rs`), the generated file is brought in with `include!`
//! (weights, test inputs and the host's expected logits as `static` arrays, in flash), each
//! input runs through [`ringnn_firmware::infer::forward`] on `Plain` with activations in a
//! `ConstStaticCell`, and each result is compared with the host's bit for bit. Without a
//! model the log says so (`MODEL none`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(missing_docs)]

#[cfg(target_os = "none")]
mod device {
    use core::arch::asm;
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::SYST;
    use cortex_m_rt::{entry, exception, ExceptionFrame};
    use cortex_m_semihosting::debug;
    use defmt_semihosting as _;
    use ringnn_core::Exact;
    use ringnn_firmware::func::Func;
    use ringnn_firmware::report::{
        write_calibration, write_cost, write_float, write_row, write_violation, LineSink,
    };
    use ringnn_firmware::study::{measure, measure_micromath, Buffers, FRAC_BITS};
    use ringnn_firmware::ticks::Calibration;
    use ringnn_firmware::ticks::{calibrate, TickCounter};
    use static_cell::ConstStaticCell;

    /// The study's buffers, in `.bss` (all-zero initial value), handed out once.
    static BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());

    /// The exported model (`build.rs` copies it to `OUT_DIR` when `RINGNN_EXPORT` names
    /// it): weights, inputs and the host's results as `static` arrays of raw ring bits.
    #[cfg(ringnn_model)]
    // The generated file describes the model fully; not every item is needed here.
    #[allow(dead_code)]
    mod model {
        use ringnn_core::Z64;
        include!(concat!(env!("OUT_DIR"), "/model.rs"));
    }

    /// Activations of one inference, in `.bss`, sized by the model's widest hidden layer.
    #[cfg(ringnn_model)]
    static ACTIVATIONS: ConstStaticCell<
        ringnn_firmware::infer::Activations<
            { ringnn_firmware::infer::widest_hidden(&model::LAYER_SIZES) },
        >,
    > = ConstStaticCell::new(ringnn_firmware::infer::Activations::new());

    /// Runs the exported model on every exported input and compares each result with the
    /// host's. Returns the number of failures (a model that does not fit counts as one).
    #[cfg(ringnn_model)]
    fn run_inference<F: FnMut(&str)>(
        sink: &mut LineSink<F>,
        ticks: &mut SysTickCounter,
        cal: &Calibration,
    ) -> u32 {
        use ringnn_core::{FracBits, Plain};
        use ringnn_firmware::infer::{compare, forward, Mlp};
        use ringnn_firmware::report::{write_infer, write_infer_summary, write_model, InferCost};
        use ringnn_firmware::ticks::timed;

        let mlp = Mlp {
            sizes: &model::LAYER_SIZES,
            params: &model::PARAMS,
        };
        let n_params: usize = model::PARAMS.iter().map(|(w, b)| w.len() + b.len()).sum();
        let _ = write_model(
            sink,
            model::DATA,
            model::FRAC_BITS,
            mlp.sizes,
            n_params,
            mlp.macs(),
            model::N_INPUTS,
        );
        let Ok(f) = FracBits::new(model::FRAC_BITS) else {
            defmt::error!(
                "exported model: invalid fractional bits {=u32}",
                model::FRAC_BITS
            );
            return 1;
        };
        let mut e = Plain::new(f);
        let act = ACTIVATIONS.take();
        let (mut passed, mut correct) = (0usize, 0usize);
        let mut cost = InferCost {
            min: f64::INFINITY,
            mean: 0.0,
            max: 0.0,
        };
        for (i, x) in model::INPUTS.iter().enumerate() {
            let (eng, buf) = (&mut e, &mut *act);
            let (logits, t) = match timed(ticks, move || forward(eng, &mlp, x, buf)) {
                Ok((Ok(y), t)) => (y, t),
                Ok((Err(err), _)) => {
                    defmt::error!("inference {=usize}: {}", i, defmt::Debug2Format(&err));
                    return 1;
                }
                Err(_) => {
                    defmt::error!("inference {=usize}: longer than SysTick's range", i);
                    return 1;
                }
            };
            let instr = cal.instructions(t as u64, 1);
            let o = compare(
                i,
                logits,
                &model::EXPECTED_LOGITS[i],
                model::EXPECTED_CLASSES[i] as usize,
                model::LABELS[i] as usize,
            );
            let _ = write_infer(sink, &o, instr);
            passed += o.pass() as usize;
            correct += (o.predicted == o.label) as usize;
            cost.min = cost.min.min(instr);
            cost.max = cost.max.max(instr);
            cost.mean += instr / model::N_INPUTS as f64;
        }
        let _ = write_infer_summary(sink, passed, model::N_INPUTS, correct, &cost);
        (model::N_INPUTS - passed) as u32
    }

    /// Without an exported model there is nothing to infer: the log says so.
    #[cfg(not(ringnn_model))]
    fn run_inference<F: FnMut(&str)>(
        _sink: &mut LineSink<F>,
        _ticks: &mut SysTickCounter,
        _cal: &Calibration,
    ) -> u32 {
        defmt::println!("MODEL none: built without RINGNN_EXPORT, no on-device inference");
        0
    }

    /// SysTick as a free-running 24-bit down-counter of the processor clock.
    struct SysTickCounter {
        syst: SYST,
        start: u32,
    }

    /// SysTick's reload value: the full 24 bits.
    const RELOAD: u32 = 0x00FF_FFFF;

    impl SysTickCounter {
        fn new(mut syst: SYST) -> Self {
            syst.disable_interrupt();
            syst.set_clock_source(SystClkSource::Core);
            syst.set_reload(RELOAD);
            syst.clear_current();
            syst.enable_counter();
            SysTickCounter { syst, start: 0 }
        }
    }

    impl TickCounter for SysTickCounter {
        fn restart(&mut self) {
            // Reading COUNTFLAG clears it: from here on it says whether the counter
            // passed zero.
            let _ = self.syst.has_wrapped();
            self.start = SYST::get_current();
        }
        fn elapsed(&mut self) -> Option<u32> {
            let wrapped = self.syst.has_wrapped();
            let now = SYST::get_current();
            // One pass through zero leaves `now` above `start`; otherwise a whole period
            // or more went by and the difference is ambiguous.
            if wrapped && now <= self.start {
                return None;
            }
            Some(self.start.wrapping_sub(now) & RELOAD)
        }
    }

    /// Executes exactly `2 * n` instructions (`subs`, `bne`) for `n >= 1`: the
    /// calibration's known workload.
    #[inline(never)]
    fn busy_loop(n: u32) {
        // SAFETY: register-only loop; touches no memory and no stack.
        unsafe {
            asm!("1:", "subs {0}, {0}, #1", "bne 1b", inout(reg) n.max(1) => _,
                 options(nomem, nostack));
        }
    }

    /// Bytes of stack used so far: the distance from the top of the stack to the lowest
    /// word that no longer holds cortex-m-rt's paint (feature `paint-stack`).
    fn stack_peak() -> u32 {
        extern "C" {
            static _stack_start: u32;
            static _stack_end: u32;
        }
        let top = core::ptr::addr_of!(_stack_start) as usize;
        let mut p = core::ptr::addr_of!(_stack_end) as usize;
        while p < top {
            // SAFETY: [_stack_end, _stack_start) is RAM reserved for the stack by the
            // linker script; reading it is always valid.
            let w = unsafe { core::ptr::read_volatile(p as *const u32) };
            if w != cortex_m_rt::STACK_PAINT_VALUE {
                break;
            }
            p += 4;
        }
        (top - p) as u32
    }

    fn exit(ok: bool) -> ! {
        debug::exit(if ok {
            debug::EXIT_SUCCESS
        } else {
            debug::EXIT_FAILURE
        });
        // Only reached without a semihosting host: stop here.
        loop {
            cortex_m::asm::wfi();
        }
    }

    #[entry]
    fn main() -> ! {
        defmt::println!(
            "ringnn-firmware {=str}: exp and tanh approximations, 64-bit kernel vs 32-bit Q-format",
            env!("CARGO_PKG_VERSION")
        );
        #[cfg(feature = "panic-test")]
        deliberate_panic();

        let Some(cp) = cortex_m::Peripherals::take() else {
            defmt::error!("core peripherals already taken");
            exit(false)
        };
        let mut ticks = SysTickCounter::new(cp.SYST);
        let mut sink = LineSink::new(|s: &str| defmt::println!("{=str}", s));
        let Ok(cal) = calibrate(&mut ticks, busy_loop, 2) else {
            defmt::error!("SysTick does not count: cannot calibrate");
            exit(false)
        };
        let buf = BUFFERS.take();
        let _ = write_calibration(&mut sink, &cal);
        let mut failures = 0u32;
        for func in Func::ALL {
            for f in FRAC_BITS {
                let row = match measure(func, f, buf, &mut ticks) {
                    Ok(r) => r,
                    Err(e) => {
                        defmt::error!(
                            "{=str} {=str} f={=u32}: {}",
                            func.function(),
                            func.name(),
                            f,
                            defmt::Debug2Format(&e)
                        );
                        exit(false)
                    }
                };
                // The sink is infallible (defmt).
                let _ = write_row(&mut sink, &row);
                let _ = write_cost(&mut sink, &row, &cal);
                if let Err(v) = row.check() {
                    let _ = write_violation(&mut sink, &row, &v);
                    failures += 1;
                }
            }
        }
        for function in [Exact::Exp, Exact::Tanh] {
            match measure_micromath(function, buf, &mut ticks) {
                Ok(r) => {
                    let _ = write_float(&mut sink, &r, &cal);
                }
                Err(e) => {
                    defmt::error!("micromath: {}", defmt::Debug2Format(&e));
                    exit(false)
                }
            }
        }
        let infer_failures = run_inference(&mut sink, &mut ticks, &cal);
        if sink.truncated() {
            defmt::error!("a report line was longer than the sink's buffer");
            failures += 1;
        }
        defmt::println!("STACK peak={=u32} bytes", stack_peak());
        if failures == 0 && infer_failures == 0 {
            defmt::println!("PASS {=usize} rows", Func::ALL.len() * FRAC_BITS.len());
            exit(true)
        }
        defmt::println!(
            "FAIL {=u32} rows failed their checks, {=u32} inferences differ from the host",
            failures,
            infer_failures
        );
        exit(false)
    }

    /// Fault-path test: a panic whose location the log must show.
    #[cfg(feature = "panic-test")]
    fn deliberate_panic() {
        let n = core::hint::black_box(3usize);
        let table = [1u8, 2, 3];
        // An index out of bounds, as a real bug would panic.
        defmt::println!("about to panic on purpose: {=u8}", table[n]);
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        if let Some(loc) = info.location() {
            defmt::error!(
                "panicked at {=str}:{=u32}:{=u32}: {}",
                loc.file(),
                loc.line(),
                loc.column(),
                defmt::Display2Format(&info.message())
            );
        } else {
            defmt::error!("panicked: {}", defmt::Display2Format(&info.message()));
        }
        exit(false)
    }

    #[exception]
    unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
        defmt::error!("hard fault at pc={=u32:#x}", ef.pc());
        exit(false)
    }
}

/// The firmware runs only on `thumbv7em-none-eabihf` (`cargo run --release` inside
/// `firmware/`); on the host the library and its tests are what builds.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ringnn-firmware runs on thumbv7em-none-eabihf under QEMU: see firmware/qemu-run");
    std::process::exit(2);
}
