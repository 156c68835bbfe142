//! Seeded, replayable property runs: a case count and a seed from the
//! environment (`<PREFIX>_CASES`, `<PREFIX>_SEED`), a random seed otherwise,
//! and a proptest runner on exactly that seed, so a failure printed with its
//! seed can be run again as it was.

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// How many cases to run and on which seed.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// Cases to run.
    pub cases: u32,
    /// The seed of the generator.
    pub seed: u64,
}

impl Replay {
    /// `<prefix>_CASES` (else `default_cases`) and `<prefix>_SEED` (else random).
    pub fn from_env(prefix: &str, default_cases: u32) -> Self {
        let number = |name: &str| std::env::var(format!("{prefix}_{name}")).ok();
        Self {
            cases: number("CASES")
                .and_then(|n| n.parse().ok())
                .unwrap_or(default_cases),
            seed: number("SEED")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0),
        }
    }

    /// A runner of `self.cases` cases on `self.seed`, writing no regression
    /// files, shrinking a failure for at most `max_shrink_ms`.
    pub fn runner(&self, max_shrink_ms: u32) -> TestRunner {
        let config = Config {
            cases: self.cases,
            failure_persistence: None,
            max_shrink_time: max_shrink_ms,
            ..Config::default()
        };
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed))
    }
}
