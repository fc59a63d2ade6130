//! The host's study agrees with the kernel's documented bounds for every approximation.
use ringnn::host::cli::{approx, ApproxArgs};
use ringnn::kernel::approx::{ExpApprox, TanhApprox};

fn args(json: bool) -> ApproxArgs {
    ApproxArgs {
        exp: "all".into(),
        tanh: "all".into(),
        sigmoid: "secureml,exact".into(),
        softmax: "none".into(),
        frac_bits: "13,20".into(),
        range: None,
        step: 1.0 / 1024.0,
        logit_std: 2.0,
        softmax_rows: 10,
        softmax_cols: 10,
        subtract_max: false,
        seed: 1,
        json,
        plot: None,
    }
}

#[test]
fn float_rows_equal_the_kernel_bounds_and_plain_stays_close() {
    let mut out = Vec::new();
    approx(&args(true), &mut out).unwrap();
    let rows: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for a in ExpApprox::ALL {
        let b = a.bound();
        let float = rows
            .iter()
            .find(|r| r["function"] == "exp" && r["approx"] == a.name() && r["frac_bits"].is_null())
            .unwrap();
        // Same grid (step 1/1024 on the same domain) as the kernel's measurement.
        let abs = float["max_abs_err"].as_f64().unwrap();
        assert!(
            abs <= b.max_abs && abs >= 0.9 * b.max_abs,
            "{}: {abs} vs {b:?}",
            a.name()
        );
        let at20 = rows
            .iter()
            .find(|r| r["function"] == "exp" && r["approx"] == a.name() && r["frac_bits"] == 20)
            .unwrap();
        // Horner amplifies each truncation by |x| per degree: up to 6^k ulps at x = -6.
        let limit = match a.coefficients() {
            Some(c) => 6f64.powi(c.len() as i32) * 2f64.powi(-20),
            // Eight squarings multiply the first truncation by 256 e^x.
            None if a == ExpApprox::Limit8 => 300.0 * 4f64.exp() * 2f64.powi(-20),
            None => 1e-3,
        };
        let d = at20["max_abs_vs_float"].as_f64().unwrap();
        assert!(d < limit, "{}: {d} >= {limit}", a.name());
        assert_eq!(at20["overflow_count"], 0);
    }
    for t in TanhApprox::ALL {
        let float = rows
            .iter()
            .find(|r| {
                r["function"] == "tanh" && r["approx"] == t.name() && r["frac_bits"].is_null()
            })
            .unwrap();
        assert!(float["max_abs_err"].as_f64().unwrap() <= t.bound().max_abs);
    }
}
