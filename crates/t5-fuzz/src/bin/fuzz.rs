//! The long fuzzing run: `cargo run --release -p t5-fuzz --bin fuzz -- <target|all> <executions> [seconds]`
//! runs each target on mutations of its corpus until `executions` (or `seconds`) and prints the
//! figures docs/fuzzing.md records. Crashing inputs go to target/fuzz-crashes/.

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let executions: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    let crash_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes");
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    for t in t5_fuzz::TARGETS.iter().filter(|t| which == "all" || t.name == which) {
        let start = Instant::now();
        let limit = Duration::from_secs(seconds);
        let run = t5_fuzz::fuzz(t, executions, seed(), Some(&crash_dir), |_| start.elapsed() > limit);
        let s = start.elapsed().as_secs_f64();
        println!("{}: {} executions in {:.0} s ({:.0}/s), {} crashes", t.name, run.executions, s, run.executions as f64 / s, run.crashes);
        failed |= run.crashes > 0;
    }
    std::process::exit(i32::from(failed));
}

fn seed() -> u64 {
    std::env::var("T5_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0x5eed)
    })
}
