//! The long fuzzing run: `cargo run --release -p t5-fuzz --bin fuzz -- <target|all> <executions> [seconds]`
//! runs each target on mutations of its corpus until `executions` (or `seconds`) and prints the
//! figures docs/fuzzing.md records. Crashing inputs go to target/fuzz-crashes/.
//! `fuzz seeds <target> <dir>` writes the target's corpus (the seeds mutations start from, up to
//! `MAX_MUTATED_SEED` each) into `dir`: the libFuzzer campaign's seeds (scripts/fuzz-campaign.sh).

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("seeds") {
        return seeds(&args[1..]);
    }
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

fn seeds(args: &[String]) {
    let (Some(name), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: fuzz seeds <target> <dir>");
        std::process::exit(2);
    };
    if t5_fuzz::target(name).is_none() {
        eprintln!("no fuzz target {name:?}");
        std::process::exit(2);
    }
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("seed folder");
    let mut n = 0;
    for (path, data) in t5_fuzz::corpus(name) {
        if data.len() <= t5_fuzz::MAX_MUTATED_SEED {
            let file = path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
            std::fs::write(dir.join(format!("{n:03}-{file}")), data).expect("seed file");
            n += 1;
        }
    }
    println!("{name}: {n} seeds in {}", dir.display());
}
