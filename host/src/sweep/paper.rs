//! The numbers that Ho et al. (2017) report, as data, so that `ringnn reproduce` can print
//! them beside the measured ones.
//!
//! Transcribed from `paper/ho-2017-high-accuracy-approximation.md`, Table 2 (test accuracy
//! of ResNet-18 and ResNet-32 on CIFAR-10 and CIFAR-100 with softmax built on each e^x
//! approximation) and Table 3 (perplexity of a seq2seq English-French translation model
//! with 3-part hard tanh and softmax on 4- to 7-part max-of-lines e^x). The paper gives no
//! spread and no number of runs; each figure is one number. Rows the paper leaves out
//! (CIFAR-100 with Taylor degree 3 and 5) are absent here, never zero.

/// What a paper figure measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PaperMetric {
    /// Test accuracy, as a fraction (0.912 for 91.2%).
    Accuracy,
    /// Perplexity (lower is better).
    Perplexity,
}

/// One figure of the paper.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct PaperValue {
    /// ringnn's dataset name (`cifar10`, `cifar100`, `tatoeba`; the paper's seq2seq corpus
    /// is WMT'15 English-French, which ringnn stands in for with Tatoeba).
    pub data: &'static str,
    /// The paper's model, as ringnn names it (`resnet18`, `resnet32`, `seq2seq`).
    pub model: &'static str,
    /// The e^x approximation inside softmax, as ringnn names it (`exact` = "Without
    /// Approx.").
    pub exp: &'static str,
    /// The figure: accuracy as a fraction, or perplexity.
    pub value: f64,
}

/// One of the paper's tables.
#[derive(Clone, Copy, Debug)]
pub struct PaperTable {
    /// `table2` or `table3`.
    pub name: &'static str,
    /// What the figures measure.
    pub metric: PaperMetric,
    /// The figures, in the paper's row order.
    pub values: &'static [PaperValue],
}

impl PaperTable {
    /// The (data, model) columns, in order of first appearance.
    pub fn columns(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for v in self.values {
            if !out.contains(&(v.data, v.model)) {
                out.push((v.data, v.model));
            }
        }
        out
    }

    /// The figure for `exp` in column (`data`, `model`), if the paper gives one.
    pub fn get(&self, data: &str, model: &str, exp: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|v| v.data == data && v.model == model && v.exp == exp)
            .map(|v| v.value)
    }
}

const fn v(data: &'static str, model: &'static str, exp: &'static str, value: f64) -> PaperValue {
    PaperValue {
        data,
        model,
        exp,
        value,
    }
}

/// Table 2, "Results on CNNs": test accuracy.
pub const TABLE2: PaperTable = PaperTable {
    name: "table2",
    metric: PaperMetric::Accuracy,
    values: &[
        v("cifar10", "resnet18", "exact", 0.912),
        v("cifar10", "resnet32", "exact", 0.926),
        v("cifar10", "resnet18", "secureml", 0.289),
        v("cifar10", "resnet32", "secureml", 0.101),
        v("cifar10", "resnet18", "taylor2", 0.910),
        v("cifar10", "resnet32", "taylor2", 0.922),
        v("cifar10", "resnet18", "taylor3", 0.560),
        v("cifar10", "resnet32", "taylor3", 0.477),
        v("cifar10", "resnet18", "taylor4", 0.916),
        v("cifar10", "resnet32", "taylor4", 0.924),
        v("cifar10", "resnet18", "taylor5", 0.804),
        v("cifar10", "resnet32", "taylor5", 0.827),
        v("cifar10", "resnet18", "pwl4", 0.913),
        v("cifar10", "resnet32", "pwl4", 0.919),
        v("cifar10", "resnet18", "pwl5", 0.915),
        v("cifar10", "resnet32", "pwl5", 0.915),
        v("cifar10", "resnet18", "pwl6", 0.916),
        v("cifar10", "resnet32", "pwl6", 0.920),
        v("cifar10", "resnet18", "pwl7", 0.915),
        v("cifar10", "resnet32", "pwl7", 0.924),
        v("cifar100", "resnet18", "exact", 0.678),
        v("cifar100", "resnet32", "exact", 0.683),
        v("cifar100", "resnet18", "secureml", 0.011),
        v("cifar100", "resnet32", "secureml", 0.009),
        v("cifar100", "resnet18", "taylor2", 0.683),
        v("cifar100", "resnet32", "taylor2", 0.624),
        v("cifar100", "resnet18", "taylor4", 0.669),
        v("cifar100", "resnet32", "taylor4", 0.671),
        v("cifar100", "resnet18", "pwl4", 0.680),
        v("cifar100", "resnet32", "pwl4", 0.683),
        v("cifar100", "resnet18", "pwl5", 0.671),
        v("cifar100", "resnet32", "pwl5", 0.685),
        v("cifar100", "resnet18", "pwl6", 0.680),
        v("cifar100", "resnet32", "pwl6", 0.683),
        v("cifar100", "resnet18", "pwl7", 0.667),
        v("cifar100", "resnet32", "pwl7", 0.679),
    ],
};

/// The dataset the paper itself used for figures matched against ringnn's `data`: its
/// Table 3 is on WMT'15 English-French, matched here against ringnn's Tatoeba runs.
pub fn source_data(data: &str) -> &str {
    match data {
        "tatoeba" => "WMT'15 en-fr",
        d => d,
    }
}

/// Table 3, "Results on RNNs": perplexity of seq2seq (tanh: 3-part hard tanh whenever
/// softmax is approximated; "Without Approx." uses neither approximation).
pub const TABLE3: PaperTable = PaperTable {
    name: "table3",
    metric: PaperMetric::Perplexity,
    values: &[
        v("tatoeba", "seq2seq", "exact", 10.38),
        v("tatoeba", "seq2seq", "pwl4", 19.11),
        v("tatoeba", "seq2seq", "pwl5", 17.11),
        v("tatoeba", "seq2seq", "pwl6", 17.45),
        v("tatoeba", "seq2seq", "pwl7", 13.77),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table2_has_every_cifar10_row_and_the_cifar100_subset() {
        assert_eq!(TABLE2.values.len(), 20 + 16);
        assert_eq!(TABLE2.get("cifar10", "resnet32", "taylor3"), Some(0.477));
        assert_eq!(TABLE2.get("cifar100", "resnet18", "taylor3"), None);
        assert_eq!(
            TABLE2.columns(),
            vec![
                ("cifar10", "resnet18"),
                ("cifar10", "resnet32"),
                ("cifar100", "resnet18"),
                ("cifar100", "resnet32")
            ]
        );
    }

    #[test]
    fn table3_is_perplexity_per_softmax_approximation() {
        assert_eq!(TABLE3.metric, PaperMetric::Perplexity);
        assert_eq!(TABLE3.get("tatoeba", "seq2seq", "pwl7"), Some(13.77));
    }
}
