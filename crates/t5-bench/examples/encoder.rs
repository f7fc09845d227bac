//! Encoder prefill speed, one thread: `cargo run --release -p t5-bench --example encoder -- DIR [DTYPE...]`
//! (a checkpoint directory, e.g. bench/.cache/t5-small-random from bench/run.sh; dtypes default fp32 q8 q4).
//! Prints one line per dtype: encoder 8×128 and 1×512 tokens, median of 5 runs, in tokens per second.
use std::time::Instant;
use t5_core::hub::load_dir;
use t5_core::WeightDtype;
use t5_core::{Batch, Cpu, ModelKind, T5};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::Path::new(args.first().expect("usage: encoder DIR [DTYPE...]"));
    let dtypes: Vec<String> = if args.len() > 1 { args[1..].to_vec() } else { ["fp32", "q8", "q4"].map(String::from).to_vec() };
    for d in dtypes {
        let dtype = WeightDtype::parse(&d).expect("dtype");
        let (cfg, _, store) = load_dir(dir).expect("load");
        let model = T5::load_with_dtype(cfg, &store, ModelKind::ConditionalGeneration, Cpu, dtype).expect("model");
        let shapes = [(8usize, 128usize), (1, 512)];
        let mut line = format!("native {d}:");
        for (b, s) in shapes {
            let ids: Vec<u32> = (0..b * s).map(|i| (100 + (i * 53) % 3000) as u32).collect();
            let batch = Batch::new(ids, None, b, s).unwrap();
            model.encode(&batch).unwrap();
            let mut times: Vec<f64> = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    model.encode(&batch).unwrap();
                    t.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            line += &format!(" encoder {b}x{s} {:.0} tok/s ({:.1} ms)", (b * s) as f64 / times[2], times[2] * 1e3);
        }
        println!("{line}");
    }
}
