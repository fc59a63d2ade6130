//! Comma lists of names and numbers on the command line (`--exp pwl4,taylor3`,
//! `--frac-bits 8,13`), each refused with its flag and the valid names.

use super::*;

pub(super) fn items(flag: &'static str, list: &str) -> Result<Vec<String>, ConfigError> {
    let v: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if v.is_empty() {
        return Err(ConfigError::Empty(flag));
    }
    Ok(v)
}

pub(super) fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

pub(super) fn exp_list(flag: &'static str, list: &str) -> Result<Vec<ExpApprox>, ConfigError> {
    let names = items(flag, list)?;
    if names == ["none"] {
        return Ok(Vec::new());
    }
    if names == ["all"] {
        return Ok(ExpApprox::ALL.to_vec());
    }
    let parsed = names
        .iter()
        .map(|n| {
            ExpApprox::parse(n).map_err(|e| ConfigError::Name {
                flag,
                message: format!("{e} (or all, none)"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dedup(parsed))
}

pub(super) fn tanh_list(list: &str) -> Result<Vec<TanhApprox>, ConfigError> {
    let names = items("tanh", list)?;
    match names.as_slice() {
        [n] if n == "none" => return Ok(Vec::new()),
        [n] if n == "all" => return Ok(TanhApprox::ALL.to_vec()),
        _ => {}
    }
    let parsed = names
        .iter()
        .map(|n| {
            TanhApprox::parse(n).map_err(|e| ConfigError::Name {
                flag: "tanh",
                message: format!("{e} (or all, none)"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dedup(parsed))
}

pub(super) fn sigmoid_list(
    list: &str,
    exps: &[ExpApprox],
) -> Result<Vec<SigmoidApprox>, ConfigError> {
    let names = items("sigmoid", list)?;
    let names: Vec<String> = match names.as_slice() {
        [n] if n == "none" => return Ok(Vec::new()),
        [n] if n == "all" => SigmoidApprox::NAMES.iter().map(|s| s.to_string()).collect(),
        _ => names,
    };
    let mut out = Vec::new();
    for n in &names {
        let probe = SigmoidApprox::parse(n, ExpApprox::Exact).map_err(|e| ConfigError::Name {
            flag: "sigmoid",
            message: format!("{e} (or all, none)"),
        })?;
        match probe {
            SigmoidApprox::Exp(_) => {
                if exps.is_empty() {
                    return Err(ConfigError::Value {
                        flag: "sigmoid",
                        message: "`exp` needs at least one e^x approximation in --exp".into(),
                    });
                }
                out.extend(exps.iter().map(|&a| SigmoidApprox::Exp(a)));
            }
            s => out.push(s),
        }
    }
    Ok(dedup(out))
}

pub(super) fn frac_list(list: &str) -> Result<Vec<FracBits>, ConfigError> {
    frac_list_of("frac-bits", list)
}

/// [`frac_list`] for another flag than `--frac-bits`.
pub(super) fn frac_list_of(flag: &'static str, list: &str) -> Result<Vec<FracBits>, ConfigError> {
    let mut out = Vec::new();
    for n in items(flag, list)? {
        let f: u32 = n.parse().map_err(|_| ConfigError::Value {
            flag,
            message: format!("'{n}' is not a whole number; valid: 1..=40"),
        })?;
        out.push(FracBits::new(f).map_err(|e| ConfigError::Value {
            flag,
            message: e.to_string(),
        })?);
    }
    Ok(dedup(out))
}

/// Parses `LO:HI` into a finite range with `LO < HI`.
pub fn parse_range(s: &str) -> Result<(f64, f64), ConfigError> {
    let bad = |m: String| ConfigError::Value {
        flag: "range",
        message: m,
    };
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| bad(format!("'{s}' is not of the form LO:HI (for example -8:8)")))?;
    let lo: f64 = a
        .trim()
        .parse()
        .map_err(|_| bad(format!("'{a}' is not a number")))?;
    let hi: f64 = b
        .trim()
        .parse()
        .map_err(|_| bad(format!("'{b}' is not a number")))?;
    if !lo.is_finite() || !hi.is_finite() || lo >= hi {
        return Err(bad(format!("need finite LO < HI, got {lo}:{hi}")));
    }
    Ok((lo, hi))
}

/// The `--comparison` choice (`a2b` or `fss`).
///
/// # Errors
/// An unknown name, with the valid ones.
pub(super) fn comparison(name: &str) -> Result<crate::mpc::Comparison, ConfigError> {
    name.trim().parse().map_err(|message| ConfigError::Name {
        flag: "comparison",
        message,
    })
}
