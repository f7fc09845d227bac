//! Fuzz targets of t5-web's parsers, one per input format, each against the public entry point a
//! load goes through, plus a mutation driver and structured generators.
//!
//! A target takes bytes and must return (an `Ok` or a typed `T5Error`) without panicking, hanging
//! or allocating beyond what its input can justify. The committed corpus (`corpus/<target>/`: the
//! test fixtures' files, hand-made edge cases, and every input that ever crashed a target) is
//! replayed by `cargo test -p t5-fuzz`, which then runs each target on mutations of it for a short
//! fixed budget; `cargo run --release -p t5-fuzz --bin fuzz -- <target> <executions>` is the long
//! run (docs/fuzzing.md). Structured targets (`tests/structured.rs`) draw configs and tensor tables
//! from bolero generators.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use t5_core::config::{GenerationConfig, T5Config};
use t5_core::tokenizer::Tokenizer;
use t5_core::{ShardStream, WeightStore};
use t5_core::{Batch, Cpu, ModelKind, WeightDtype, T5};

/// One fuzz target: a name (its corpus folder) and the function under test.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// A few texts every tokenizer target encodes (normalizer, pre-tokenizer and model all run).
const PROBES: [&str; 5] = ["Hello world", "ＡＢＣ ｶﾀｶﾅ é e\u{301} ﬁ", "\u{0}\u{7f}\u{2028} ", "😀👍🏽 ǅ ẞ", "translate English to German: The house is wonderful."];

fn safetensors(data: &[u8]) {
    let _ = WeightStore::from_shards(vec![("model.safetensors".into(), data.to_vec())]);
}

/// The streaming loader: the same bytes in pieces whose sizes come from the input's first byte, into every weight
/// form, converted by rows on 1–3 threads in batches of a few bytes (cut into rows and parts of rows) or 1 MiB.
fn shard_stream(data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else { return };
    let piece = 1 + cut as usize * 7;
    let threads = 1 + cut as usize % 3;
    let batch_bytes = [1 << 20, 64, 257, 4096][cut as usize / 3 % 4];
    for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4] {
        let mut store = WeightStore::new();
        let s = ShardStream::new("model.safetensors", Some(data.len() as u64), dtype, Some(1 << 32));
        let mut s = s.with_threads(threads).with_batch_bytes(batch_bytes);
        let ok = data.chunks(piece).all(|c| s.push(&mut store, c).is_ok());
        if ok {
            let _ = s.finish(&mut store);
        }
    }
}

fn gguf(data: &[u8]) {
    let _ = t5_core::formats::gguf::load("model.gguf", data.to_vec());
}

fn pickle(data: &[u8]) {
    let _ = t5_core::formats::pickle::read_torch_checkpoint(data, "pytorch_model.bin");
}

fn spiece(data: &[u8]) {
    if let Ok(tk) = Tokenizer::from_spiece(data, None) {
        for p in PROBES {
            let _ = tk.encode(p, true);
        }
    }
}

fn tokenizer_json(data: &[u8]) {
    if let Ok(tk) = Tokenizer::from_bytes(data, None) {
        for p in PROBES {
            if let Ok(ids) = tk.encode(p, true) {
                let _ = tk.decode(&ids, true);
            }
        }
    }
}

/// A config that loads must give in-range relative-position buckets and size estimates without
/// overflow; then the same bytes as generation_config.json over it.
fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = T5Config::from_json(text) {
        check_config_invariants(&cfg);
        let _ = GenerationConfig::from_json(text, &cfg);
    }
}

/// What a config that passed validation promises (the forward pass relies on it).
pub fn check_config_invariants(cfg: &T5Config) {
    let nb = cfg.relative_attention_num_buckets;
    for rel in (-300i64..=300).chain([i32::MIN as i64, i32::MAX as i64, -100_000, 100_000]) {
        for bidirectional in [true, false] {
            let b = t5_core::position::relative_position_bucket(rel, bidirectional, nb, cfg.relative_attention_max_distance);
            assert!(b < nb, "bucket {b} of {rel} out of range for {nb} buckets (max_distance {})", cfg.relative_attention_max_distance);
        }
    }
    for dtype in [WeightDtype::F32, WeightDtype::Q4] {
        let _ = t5_core::formats::estimate_model_bytes(cfg, true, true, dtype);
    }
    for holds_scores in [true, false] {
        let est = t5_core::budget::Estimate { cfg, holds_scores };
        let _ = est.encode(1, 512);
        let all = t5_core::model::OutputFlags { hidden_states: true, attentions: true };
        let _ = est.forward(1, 512, true, Some(t5_core::budget::DecoderPass { positions: 64, past: 8, logits: cfg.vocab_size }), all);
    }
}

/// The tiniest T5 the generate options run on (vocabulary 64, d_model 8, one block per stack):
/// a step costs microseconds, so the target spends its time in the options, the budget and the
/// search, not in a 32k-word output projection. Deterministic weights, built in memory.
pub fn tiny_model() -> &'static T5<Cpu> {
    static M: std::sync::OnceLock<T5<Cpu>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let cfg = T5Config::from_json(TINY_CONFIG).expect("tiny config");
        let mut header = serde_json::Map::new();
        let mut data: Vec<u8> = Vec::new();
        for w in t5_core::names::model_weights(&cfg, false, true, false) {
            let shape = w.shape(&cfg);
            let start = data.len();
            let n: usize = shape.iter().product();
            for i in 0..n {
                let v = if matches!(w, t5_core::names::Weight::FinalNorm(_)) { 1.0 } else { ((start / 4 + i) as f32 * 0.7).sin() * 0.5 };
                data.extend(v.to_le_bytes());
            }
            header.insert(w.hf_name(), serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}));
        }
        let h = serde_json::Value::Object(header).to_string().into_bytes();
        let mut file = (h.len() as u64).to_le_bytes().to_vec();
        file.extend(h);
        file.extend(data);
        let store = WeightStore::from_shards(vec![("model.safetensors".into(), file)]).expect("tiny weights");
        let mut m = T5::load(cfg, &store, ModelKind::ConditionalGeneration, Cpu).expect("tiny model");
        m.set_memory_limit(Some(1 << 32));
        m
    })
}

const TINY_CONFIG: &str = r#"{"vocab_size": 64, "d_model": 8, "d_kv": 4, "num_heads": 2, "d_ff": 16, "num_layers": 1,
    "num_decoder_layers": 1, "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
    "feed_forward_proj": "relu", "eos_token_id": 1, "pad_token_id": 0, "decoder_start_token_id": 0}"#;

/// Generate options (JSON) applied to the tiny model's generation config, validated and checked
/// against the budget; runs the generation when the call is small.
fn generate_options(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let model = tiny_model();
    let mut gen = GenerationConfig::from_model_config(&model.config);
    if gen.apply_json(&v).is_err() || gen.validate(model.config.vocab_size).is_err() {
        return;
    }
    let input = Batch::new(vec![37, 9, 5, 1], None, 1, 4).unwrap();
    let small = gen.total_max_length() <= 12 && t5_core::budget::rows_per_input(&gen) <= 8;
    if small {
        let _ = t5_core::generate::generate(model, &input, &gen, |_| true);
    } else {
        let _ = t5_core::budget::check_generate(model, 1, 4, &gen);
    }
}

pub const TARGETS: [Target; 8] = [
    Target { name: "safetensors", run: safetensors },
    Target { name: "shard_stream", run: shard_stream },
    Target { name: "gguf", run: gguf },
    Target { name: "pickle", run: pickle },
    Target { name: "spiece", run: spiece },
    Target { name: "tokenizer_json", run: tokenizer_json },
    Target { name: "config", run: config },
    Target { name: "generate_options", run: generate_options },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Run the target `name` on `data` (the libFuzzer binaries in `fuzz/` call this: the target bodies
/// live only here). An unknown name panics.
pub fn run(name: &str, data: &[u8]) {
    (target(name).unwrap_or_else(|| panic!("no fuzz target {name:?}")).run)(data)
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures")
}

pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

/// Test fixtures (under `test/fixtures`) that seed each target besides its `corpus/` folder.
pub fn fixture_seeds(target: &str) -> &'static [&'static str] {
    match target {
        "safetensors" | "shard_stream" => &["gguf/oracle.safetensors", "heads/oracle.safetensors", "tiny-t5/model.safetensors"],
        "gguf" => &["gguf/llama.gguf", "gguf/tiny-t5encoder-q4_0.gguf", "gguf/tiny-t5-q8_0.gguf", "gguf/tiny-t5-untied-q4_1.gguf"],
        "pickle" => &["formats/tensors.bin", "formats/tensors-legacy.bin", "formats/tensors-plain.pkl", "formats/evil-system.bin", "formats/evil-newobj.pkl", "formats/evil-eval-legacy.bin"],
        "spiece" => &["tiny-t5/spiece.model"],
        "tokenizer_json" => &["tiny-t5/tokenizer.json"],
        "config" => &["tiny-t5/config.json", "tiny-t5-v1_1/config.json", "gguf/tiny-t5-gguf/config.json", "tiny-t5/generation_config.json"],
        "generate_options" => &["tiny-t5/generation_config.json"],
        _ => &[],
    }
}

/// t5-core's committed hostile files (`crates/t5-core/tests/corpus/<format>/`) that seed a target.
pub fn core_corpus_dir(target: &str) -> Option<PathBuf> {
    let format = match target {
        "safetensors" | "shard_stream" => "safetensors",
        "gguf" | "pickle" | "spiece" => target,
        _ => return None,
    };
    Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../t5-core/tests/corpus").join(format))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect()).unwrap_or_default();
    files.sort();
    files
}

/// The corpus of a target: its committed `corpus/<target>/` files (edge cases, small seeds and
/// every input that ever crashed it), t5-core's hostile files of its format, and its fixture seeds.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = files_in(&corpus_dir(target));
    if let Some(dir) = core_corpus_dir(target) {
        files.extend(files_in(&dir));
    }
    files.extend(fixture_seeds(target).iter().map(|f| fixtures().join(f)));
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// Mutations start from seeds up to this size; larger ones (the full-size fixtures: a 2.4 MB
/// tokenizer.json, 4 MB of weights) are replayed once: mutating them costs milliseconds per
/// execution and the small seeds (`corpus/<target>/tiny-*`) reach the same code.
pub const MAX_MUTATED_SEED: usize = 512 << 10;

/// Run `t` on `data`; a panic becomes `Err(message)`.
pub fn run_caught(t: &Target, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (t.run)(data))).map_err(|e| {
        e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "panic".into())
    })
}

/// xorshift64*: the mutation driver's deterministic PRNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Values that break size arithmetic (as little-endian u32 / u64 and as decimal text).
const INTERESTING: [u64; 12] = [0, 1, 2, 3, 4, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 0x1_0000_0001, u64::MAX];

/// One mutation of `data` (AFL-style havoc: bit flips, interesting integers, truncation,
/// duplication, splices from `other`, and in text, numbers replaced by interesting ones).
pub fn mutate(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = d.len();
        match rng.below(9) {
            0 if n > 0 => {
                let i = rng.below(n);
                d[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                d[i] = rng.next() as u8;
            }
            2 if n >= 4 => {
                let i = rng.below(n - 3);
                let v = INTERESTING[rng.below(INTERESTING.len())] as u32;
                d[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            3 if n >= 8 => {
                let i = rng.below(n - 7);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                d[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            4 if n > 0 => d.truncate(rng.below(n)),
            5 if n > 0 => {
                let (a, len) = (rng.below(n), 1 + rng.below(64));
                let chunk: Vec<u8> = d[a..(a + len).min(n)].to_vec();
                let at = rng.below(n + 1);
                d.splice(at..at, chunk);
            }
            6 if !other.is_empty() => {
                let (a, len) = (rng.below(other.len()), 1 + rng.below(256));
                let chunk = &other[a..(a + len).min(other.len())];
                let at = rng.below(n + 1);
                let end = (at + chunk.len()).min(n);
                d.splice(at..end, chunk.iter().copied());
            }
            7 if n > 0 => {
                // a decimal number in text replaced by an interesting one
                let start = rng.below(n);
                if let Some(off) = d[start..].iter().position(|c| c.is_ascii_digit()) {
                    let a = start + off;
                    let b = a + d[a..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let v = INTERESTING[rng.below(INTERESTING.len())];
                    let text = if rng.below(4) == 0 { format!("-{v}") } else { v.to_string() };
                    d.splice(a..b, text.into_bytes());
                }
            }
            _ if n > 0 => {
                let a = rng.below(n);
                let b = (a + 1 + rng.below(32)).min(n);
                d.drain(a..b);
            }
            _ => d.push(rng.next() as u8),
        }
    }
    d
}

/// Figures of a fuzzing run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Run {
    pub executions: u64,
    pub crashes: u64,
}

/// Replay the corpus of `t`, then run `executions` mutations of it (seeded by `seed`); each
/// crashing input is written to `crash_dir` (when given) and counted. `stop` ends the run early.
pub fn fuzz(t: &Target, executions: u64, seed: u64, crash_dir: Option<&Path>, mut stop: impl FnMut(&Run) -> bool) -> Run {
    let corpus = corpus(t.name);
    let mut run = Run::default();
    let record = |input: &[u8], msg: &str, run: &mut Run| {
        run.crashes += 1;
        eprintln!("{}: crash ({msg}) on a {}-byte input", t.name, input.len());
        if let Some(dir) = crash_dir {
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::write(dir.join(format!("crash-{}-{}", t.name, run.executions)), input);
        }
    };
    for (_, data) in &corpus {
        run.executions += 1;
        if let Err(m) = run_caught(t, data) {
            record(data, &m, &mut run);
        }
    }
    let seeds: Vec<&[u8]> = corpus.iter().map(|(_, d)| d.as_slice()).filter(|d| d.len() <= MAX_MUTATED_SEED).collect();
    if seeds.is_empty() {
        return run;
    }
    let mut rng = Rng::new(seed);
    while run.executions < executions && !stop(&run) {
        let a = seeds[rng.below(seeds.len())];
        let b = seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, a, b);
        run.executions += 1;
        if let Err(m) = run_caught(t, &input) {
            record(&input, &m, &mut run);
        }
    }
    run
}
