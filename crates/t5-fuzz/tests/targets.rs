//! Every fuzz target: its corpus replayed (no input may panic), then mutations of it for a short
//! fixed budget (3 s or 2,000 executions per target, whichever ends first). A crash writes the
//! input under target/fuzz-crashes/; fix the bug and add the input to corpus/<target>/.

use std::time::{Duration, Instant};
use t5_fuzz::{corpus, fuzz, run_caught, TARGETS};

#[test]
fn corpus_replays_without_a_panic() {
    let mut failures = vec![];
    for t in &TARGETS {
        let files = corpus(t.name);
        assert!(!files.is_empty(), "{} has no corpus", t.name);
        for (path, data) in files {
            if let Err(m) = run_caught(t, &data) {
                failures.push(format!("{}: {}: {m}", t.name, path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_target_survives_a_short_mutation_run() {
    let crash_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes");
    let seed = std::env::var("T5_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let mut report = vec![];
    for t in &TARGETS {
        let start = Instant::now();
        let run = fuzz(t, 2_000, seed, Some(&crash_dir), |_| start.elapsed() > Duration::from_secs(3));
        report.push(format!("{}: {} executions, {} crashes", t.name, run.executions, run.crashes));
        assert_eq!(run.crashes, 0, "{}: crashing inputs in {}", t.name, crash_dir.display());
    }
    eprintln!("{}", report.join("\n"));
}
