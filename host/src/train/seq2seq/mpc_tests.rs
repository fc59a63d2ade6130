//! The encoder-decoder on two parties' shares against `Plain`: the same training steps,
//! within the truncation bounds that every two-party protocol is held to.

use super::epochs::Learner as _;
use super::*;
use crate::mpc::local::{run_in_process, LocalConfig};
use crate::mpc::{reconstruct, share, Comparison};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::approx::{ExpApprox, TanhApprox};
use ringnn_core::Z64;

/// The paper's recurrent setting: hard tanh, SecureML's sigmoid, pwl4 softmax, f = 13.
fn config() -> TrainConfig {
    TrainConfig {
        model: "seq2seq".parse().unwrap(),
        data: "tatoeba".parse().unwrap(),
        engine: EngineKind::Plain,
        exp: ExpApprox::Pwl(4),
        tanh: TanhApprox::Hard,
        sigmoid: SigmoidApprox::SecureMl,
        batch: 3,
        lr: 0.5,
        momentum: 0.9,
        weight_decay: 1e-3,
        ..TrainConfig::default()
    }
}

fn model() -> Seq2Seq {
    Seq2Seq {
        src_vocab: 7,
        tgt_vocab: 6,
        embed: 3,
        hidden: 4,
        sigmoid: SigmoidApprox::SecureMl,
        tanh: TanhApprox::Hard,
    }
}

/// Two batches of different shapes: sources and targets of different lengths (an empty
/// target too), so that the encoder's state masks and the loss masks both count.
fn batches() -> Vec<SeqBatch> {
    let p = |src: &[u32], tgt: &[u32]| Pair {
        src: src.to_vec(),
        tgt: tgt.to_vec(),
    };
    let a = [p(&[4, 5, 6], &[4, 5]), p(&[6], &[5, 4, 4]), p(&[5, 4], &[])];
    let b = [p(&[3, 4], &[5]), p(&[6, 6, 5, 4], &[4, 3])];
    vec![
        SeqBatch::new(&a.iter().collect::<Vec<_>>()),
        SeqBatch::new(&b.iter().collect::<Vec<_>>()),
    ]
}

/// `steps` steps over [`batches`] in turn from `params` on `e`: the parameters after
/// them and the target probabilities of the first step.
fn run_steps<E: Engine>(
    e: &mut E,
    params: Vec<E::Elem>,
    steps: usize,
) -> (Vec<E::Elem>, Vec<E::Elem>) {
    let cfg = config();
    let m = model();
    let mut t = Learner::new(&cfg, &m, steps as u64, params);
    let mut first = Vec::new();
    for (i, mut b) in batches().into_iter().cycle().take(steps).enumerate() {
        let p = t.train_step(e, &mut b).unwrap();
        if i == 0 {
            first = p;
        }
    }
    (t.params, first)
}

fn max_ulp(a: &[Z64], b: &[Z64]) -> i64 {
    a.iter()
        .zip(b)
        .map(|(&u, &v)| (u - v).to_signed().abs())
        .max()
        .unwrap()
}

/// One step and four steps of the encoder-decoder on shares (the adder and the FSS
/// comparison) against `Plain`.
///
/// Every truncation may round differently by one ulp (stochastic on shares, to nearest
/// on `Plain`), and how far that carries is the network's conditioning: measured here
/// by moving `Plain`'s initial parameters by one ulp at random. The two-party steps must
/// stay within three times that (at least 16 ulp = 0.002); a wrong protocol, a mask
/// applied to the wrong rows or a gate's comparison on the wrong side is off by far more.
#[test]
fn training_steps_on_shares_match_plain() {
    let cfg = config();
    let m = model();
    let mut pe = Plain::new(cfg.frac_bits);
    let p0 = pe.input("initial parameters", &m.init(3)).unwrap();
    for (steps, comparison) in [
        (1, Comparison::A2b),
        (4, Comparison::A2b),
        (4, Comparison::Fss),
    ] {
        let (plain, probs_plain) = run_steps(&mut pe, p0.clone(), steps);
        let mut prng = ChaCha20Rng::seed_from_u64(11);
        let jittered: Vec<Z64> = p0
            .iter()
            .map(|&v| v + Z64(rand::Rng::random_range(&mut prng, 0..3u64).wrapping_sub(1)))
            .collect();
        let (moved, _) = run_steps(&mut pe, jittered, steps);
        let sens = max_ulp(&moved, &plain);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let shares = share(&p0, &mut rng);
        let mut lc = LocalConfig::new(cfg.frac_bits);
        lc.dealer_seed = Some([2; 32]);
        lc.comparison = comparison;
        let out = run_in_process(&lc, |e| {
            let i = e.party().index();
            run_steps(e, shares[i].clone(), steps)
        });
        let params = reconstruct(&out[0].0, &out[1].0);
        let probs = reconstruct(&out[0].1, &out[1].1);
        let (dp, dw) = (max_ulp(&probs, &probs_plain), max_ulp(&params, &plain));
        let tol = (3 * sens).max(16);
        eprintln!(
            "{steps} steps ({comparison}): probabilities within {dp} ulp, parameters within \
             {dw} ulp of Plain (1 ulp on the inputs moves Plain by {sens}; tolerance {tol})"
        );
        assert!(dp <= 16, "{steps} steps: probabilities differ by {dp} ulp");
        assert!(
            dw <= tol,
            "{steps} steps: parameters differ by {dw} ulp (tolerance {tol})"
        );
        assert!(params != p0, "the steps changed nothing");
    }
}
