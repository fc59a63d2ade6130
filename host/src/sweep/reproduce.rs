//! The paper's experiments as sweeps: Table 2 (CNNs on CIFAR, softmax on each e^x
//! approximation) and Table 3 (seq2seq perplexity with hard tanh and 4- to 7-part
//! max-of-lines softmax), each at two scales.
//!
//! - `full` encodes the paper's setup as far as the paper states it, for machines far
//!   bigger than a laptop; what the paper leaves out (total steps, weight decay, the
//!   seq2seq's size and optimiser) is ringnn's choice and says so in the table's head.
//! - `quick` fits a 2-core machine in hours, not days. It cannot be the paper's
//!   experiment: the models and data sizes are cut, and every cut is written into the
//!   table's head, so no reader mistakes the quick numbers for a reproduction of the
//!   paper's figures. It trains until exact softmax plateaus (Table 2: LeNet-5 on all
//!   20,000 CIFAR-10 training images of ringnn's copy, 20 epochs with a cosine rate), with
//!   3 seeds, on Float and (the rows the study needs) on `Plain` at f = 13, so the table
//!   shows the paper's qualitative finding and what two-party arithmetic does to it.

use super::grid::{Common, Grid, Precision};
use super::paper::{self, PaperTable};
use super::report::Notes;
use std::path::PathBuf;

/// Which of the paper's tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Table {
    /// Table 2: CNNs on CIFAR-10 and CIFAR-100.
    Table2,
    /// Table 3: seq2seq English-French.
    Table3,
}

/// How big.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scale {
    /// About 30 minutes on 2 cores.
    Quick,
    /// The paper's setup.
    Full,
}

/// The e^x approximations of the paper's Table 2 (CIFAR-10 rows), in its order.
pub const TABLE2_EXP: &[&str] = &[
    "exact", "secureml", "taylor2", "taylor3", "taylor4", "taylor5", "pwl4", "pwl5", "pwl6", "pwl7",
];

/// The (e^x, tanh) pairs of the paper's Table 3, in its order: "Without Approx." uses
/// neither approximation; the others use hard tanh.
pub const TABLE3_PAIRS: &[(&str, &str)] = &[
    ("exact", "exact"),
    ("pwl4", "hard"),
    ("pwl5", "hard"),
    ("pwl6", "hard"),
    ("pwl7", "hard"),
];

/// The precision of the `Plain` runs that the quick scale adds on its own.
pub const QUICK_FRAC_BITS: u32 = 13;

/// The Table 2 rows that the quick scale also trains on `Plain` at [`QUICK_FRAC_BITS`]:
/// exact, the paper's max-of-lines, a collapsing odd Taylor and SecureML's.
pub const TABLE2_QUICK_PLAIN: &[&str] = &["exact", "pwl4", "taylor3", "secureml"];

/// A reproduction, ready to validate into a sweep.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The grids, run in this order (a run in two grids runs once).
    pub grids: Vec<Grid>,
    /// Title and stated setup.
    pub notes: Notes,
    /// The paper's figures.
    pub paper: &'static PaperTable,
}

/// The setup of `table` at `scale`. `frac_bits` adds plain (Z_2^64) runs of every row at
/// those precisions beside the float runs (the quick scale adds its own `Plain` runs at
/// [`QUICK_FRAC_BITS`] in any case); `seeds` is the number of seeds (1, 2, ...).
///
/// # Errors
/// Table 3 when this build has no seq2seq model.
pub fn setup(
    table: Table,
    scale: Scale,
    data_dir: Option<PathBuf>,
    frac_bits: &[u32],
    seeds: u64,
) -> Result<Setup, String> {
    let mut precisions = vec![Precision::Float];
    precisions.extend(frac_bits.iter().map(|&f| Precision::Fixed(f)));
    let seeds: Vec<u64> = (1..=seeds).collect();
    let extra_precisions = if frac_bits.is_empty() {
        String::new()
    } else {
        format!(
            " Plain (Z_2^64) runs at f = {} were added (--frac-bits); each takes about 1.6x \
             a float run's time.",
            frac_bits
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match (table, scale) {
        (Table::Table2, Scale::Quick) => Ok(Setup {
            grids: with_quick_plain(TABLE2_QUICK_PLAIN, Grid {
                models: vec!["lenet".into()],
                data: vec!["cifar10".into()],
                approx: TABLE2_EXP
                    .iter()
                    .map(|e| (e.to_string(), "hard".to_string()))
                    .collect(),
                precisions,
                seeds,
                common: Common {
                    data_dir,
                    grad: "exact".into(),
                    sigmoid: "secureml".into(),
                    subtract_max: false,
                    epochs: 20,
                    batch: 64,
                    lr: Some(0.02),
                    momentum: 0.9,
                    weight_decay: 5e-4,
                    schedule: "cosine".into(),
                    train_limit: Some(20_000),
                    test_limit: None,
                    comparison: crate::mpc::Comparison::A2b,
                },
            }),
            notes: Notes {
                title: "Table 2 (CNNs), quick scale: NOT the paper's experiment".into(),
                lines: vec![
                    "Model: LeNet-5 stands in for ResNet-18 and ResNet-32. A ResNet-20 \
                     training step on a 2-core machine runs at about 13 samples/s (float), \
                     so 20 epochs of 20,000 images would take 8 hours a run; LeNet-5 runs \
                     at about 3,400 samples/s."
                        .into(),
                    "Data: all 20,000 training and 10,000 test images of CIFAR-10 from \
                     RINGNN_DATA/cifar10 (or --data-dir): a JPEG-recompressed copy of \
                     CIFAR-10 (mean error 5.8/255 per pixel), so figures are close to, not \
                     equal to, figures on the original. Random crop and flip augmentation."
                        .into(),
                    "Training: 20 epochs (exact softmax plateaus: the loss curves show it), \
                     batch 64, SGD lr 0.02 with a cosine schedule, momentum 0.9, weight decay \
                     5e-4; approximations inside softmax, exact gradient of the approximation \
                     (the paper's choice); 3 seeds (--seeds). Every row on the float engine \
                     (f32); exact, pwl4, taylor3 and secureml also on Plain (Z_2^64) at \
                     f = 13, the two-party engine's arithmetic. Measured on a 2-core \
                     machine (5.5 s a float epoch, 12 s a Plain epoch when alone): a float \
                     run about 2 minutes alone and 3 to 6 while other work shares the \
                     cores, a Plain run 4 and 8; 42 runs, about 2 hours alone, 4 to 5 \
                     shared."
                        .into(),
                    format!(
                        "The paper's columns are ResNet-18/32 trained to convergence on all of \
                         CIFAR-10: compare the pattern across rows, not the levels.{extra_precisions}"
                    ),
                ],
            },
            paper: &paper::TABLE2,
        }),
        (Table::Table2, Scale::Full) => Ok(Setup {
            grids: vec![Grid {
                models: vec!["resnet18".into(), "resnet32".into()],
                data: vec!["cifar10".into(), "cifar100".into()],
                approx: TABLE2_EXP
                    .iter()
                    .map(|e| (e.to_string(), "hard".to_string()))
                    .collect(),
                precisions,
                seeds,
                common: Common {
                    data_dir,
                    grad: "exact".into(),
                    sigmoid: "secureml".into(),
                    subtract_max: false,
                    // 80,000 steps of 128 over 50,000 images.
                    epochs: 205,
                    batch: 128,
                    lr: Some(0.1),
                    momentum: 0.9,
                    weight_decay: 2e-4,
                    schedule: "step:40000,60000".into(),
                    train_limit: None,
                    test_limit: None,
                    comparison: crate::mpc::Comparison::A2b,
                },
            }],
            notes: Notes {
                title: "Table 2 (CNNs), full scale: the paper's setup".into(),
                lines: vec![
                    "ResNet-18 and ResNet-32 on all of CIFAR-10 and CIFAR-100 (50,000 train, \
                     10,000 test; --data-dir must hold the complete official sets: \
                     RINGNN_DATA/cifar10 in ringnn's own test data has only 20,000 training \
                     images), random crop and flip augmentation."
                        .into(),
                    "Paper: SGD with momentum 0.9, batch 128, learning rate 0.1 divided by 10 \
                     every 20,000 steps after 40,000 steps; exact gradient of the approximation."
                        .into(),
                    "ringnn's choices where the paper is silent: 80,000 steps in all (205 \
                     epochs; rate 0.1, then 0.01 from step 40,000, 0.001 from step 60,000), \
                     weight decay 2e-4, one seed; float engine (f32) as the paper trained \
                     in floating point."
                        .into(),
                    format!(
                        "Taylor degrees 3 and 5 also run on CIFAR-100 although the paper does \
                         not report them there.{extra_precisions}"
                    ),
                ],
            },
            paper: &paper::TABLE2,
        }),
        (Table::Table3, scale) => {
            if !crate::train::model::MODELS.contains(&"seq2seq") {
                return Err(format!(
                    "seq2seq is not available in this build (models: {}); `ringnn reproduce \
                     table3` needs `--model seq2seq --data tatoeba` in `ringnn train`",
                    crate::train::model::MODELS.join(", ")
                ));
            }
            let quick = scale == Scale::Quick;
            let grid = Grid {
                    models: vec!["seq2seq".into()],
                    data: vec!["tatoeba".into()],
                    approx: TABLE3_PAIRS
                        .iter()
                        .map(|(e, t)| (e.to_string(), t.to_string()))
                        .collect(),
                    precisions,
                    seeds,
                    common: Common {
                        data_dir,
                        grad: "exact".into(),
                        sigmoid: "secureml".into(),
                        subtract_max: false,
                        epochs: if quick { 5 } else { 20 },
                        batch: 64,
                        lr: Some(if quick { 0.05 } else { 0.5 }),
                        momentum: if quick { 0.9 } else { 0.0 },
                        weight_decay: 0.0,
                        schedule: "constant".into(),
                        train_limit: quick.then_some(4_000),
                        test_limit: quick.then_some(500),
                        comparison: crate::mpc::Comparison::A2b,
                    },
                };
            let all: Vec<&str> = TABLE3_PAIRS.iter().map(|(e, _)| *e).collect();
            Ok(Setup {
                grids: if quick {
                    with_quick_plain(&all, grid)
                } else {
                    vec![grid]
                },
                notes: Notes {
                    title: if quick {
                        "Table 3 (RNNs), quick scale: NOT the paper's experiment".into()
                    } else {
                        "Table 3 (RNNs), full scale".into()
                    },
                    lines: vec![
                        "The paper trains TensorFlow's seq2seq translation tutorial on WMT'15 \
                         English-French; ringnn's seq2seq trains on Tatoeba English-French \
                         pairs instead, so perplexities are comparable in pattern only."
                            .into(),
                        if quick {
                            "Quick: at most 4,000 training and 500 test pairs (the shortest \
                             5,000 of Tatoeba in ringnn's test data), 5 epochs, batch 64, SGD \
                             lr 0.05, momentum 0.9 (the setting seq2seq was measured stable \
                             with), 3 seeds (--seeds), float engine and every row also on Plain \
                             (Z_2^64) at f = 13, GRU gates' sigmoid SecureML's 3-part in every \
                             row."
                                .into()
                        } else {
                            "Full: the whole Tatoeba eng-fra file in --data-dir, 20 epochs, \
                             batch 64, SGD lr 0.5 without momentum (the tutorial's rate), \
                             float engine."
                                .into()
                        },
                        format!(
                            "tanh: 3-part hard tanh with every approximated softmax; \"Without \
                             Approx.\" uses exact tanh and exact e^x.{extra_precisions}"
                        ),
                    ],
                },
                paper: &paper::TABLE3,
            })
        }
    }
}

/// `grid` (the float runs and any `--frac-bits`), then the runs of `rows` on `Plain` at
/// [`QUICK_FRAC_BITS`] that the quick scale adds, first, so that the rows the study
/// compares are complete before the remaining float rows run. A run in both is kept once
/// by the sweep (same key).
fn with_quick_plain(rows: &[&str], grid: Grid) -> Vec<Grid> {
    let plain = Grid {
        approx: grid
            .approx
            .iter()
            .filter(|(e, _)| rows.contains(&e.as_str()))
            .cloned()
            .collect(),
        precisions: vec![Precision::Float, Precision::Fixed(QUICK_FRAC_BITS)],
        ..grid.clone()
    };
    vec![plain, grid]
}
