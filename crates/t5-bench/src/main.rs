//! `t5-bench make-random <config.json> <out-dir>`: a random-weight checkpoint of that shape
//! (t5-small's real config gives t5-small's real cost).
//! `t5-bench run <model-dir> [--json]`: encoder tokens/s and greedy decode tokens/s, native.

use std::path::Path;
use std::time::Instant;
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::{Batch, Cpu, ModelKind, T5Config, T5};

/// xorshift64* + Box–Muller: deterministic normal samples without extra crates.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.next_f64(), self.next_f64());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn make_random(config_path: &Path, out: &Path) {
    let text = std::fs::read_to_string(config_path).expect("read config");
    let cfg = T5Config::from_json(&text).expect("config");
    let ff = cfg.feed_forward().unwrap();
    let (d, inner, dff) = (cfg.d_model, cfg.inner_dim(), cfg.d_ff);
    let mut shapes: Vec<(String, Vec<usize>, f32)> = vec![("shared.weight".into(), vec![cfg.vocab_size, d], 1.0)];
    // T5's init scales (transformers `_init_weights`), so activations stay in a realistic range
    let attn = |p: &str, v: &mut Vec<(String, Vec<usize>, f32)>| {
        v.push((format!("{p}.q.weight"), vec![inner, d], ((d * cfg.d_kv) as f32).powf(-0.5)));
        v.push((format!("{p}.k.weight"), vec![inner, d], (d as f32).powf(-0.5)));
        v.push((format!("{p}.v.weight"), vec![inner, d], (d as f32).powf(-0.5)));
        v.push((format!("{p}.o.weight"), vec![d, inner], (inner as f32).powf(-0.5)));
    };
    for (stack, layers) in [("encoder", cfg.num_layers), ("decoder", cfg.decoder_layers())] {
        for i in 0..layers {
            let p = format!("{stack}.block.{i}.layer");
            attn(&format!("{p}.0.SelfAttention"), &mut shapes);
            shapes.push((format!("{p}.0.layer_norm.weight"), vec![d], 0.0));
            if i == 0 {
                shapes.push((format!("{p}.0.SelfAttention.relative_attention_bias.weight"), vec![cfg.relative_attention_num_buckets, cfg.num_heads], (d as f32).powf(-0.5)));
            }
            let mut f = 1;
            if stack == "decoder" {
                attn(&format!("{p}.1.EncDecAttention"), &mut shapes);
                shapes.push((format!("{p}.1.layer_norm.weight"), vec![d], 0.0));
                f = 2;
            }
            if ff.gated {
                shapes.push((format!("{p}.{f}.DenseReluDense.wi_0.weight"), vec![dff, d], (d as f32).powf(-0.5)));
                shapes.push((format!("{p}.{f}.DenseReluDense.wi_1.weight"), vec![dff, d], (d as f32).powf(-0.5)));
            } else {
                shapes.push((format!("{p}.{f}.DenseReluDense.wi.weight"), vec![dff, d], (d as f32).powf(-0.5)));
            }
            shapes.push((format!("{p}.{f}.DenseReluDense.wo.weight"), vec![d, dff], (dff as f32).powf(-0.5)));
            shapes.push((format!("{p}.{f}.layer_norm.weight"), vec![d], 0.0));
        }
        shapes.push((format!("{stack}.final_layer_norm.weight"), vec![d], 0.0));
    }
    if !cfg.tie_word_embeddings {
        shapes.push(("lm_head.weight".into(), vec![cfg.vocab_size, d], (d as f32).powf(-0.5)));
    }
    let mut rng = Rng(0x5eed);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(n, s, std)| {
            let count: usize = s.iter().product();
            let data: Vec<u8> = (0..count).flat_map(|_| if std == 0.0 { 1.0f32 } else { rng.normal() * std }.to_le_bytes()).collect();
            (n, s, data)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        bytes.iter().map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    std::fs::write(out.join("config.json"), text).unwrap();
    eprintln!("wrote {}", out.display());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn run(dir: &Path, json: bool) {
    let t0 = Instant::now();
    let (cfg, mut gen, store) = load_dir(dir).expect("load");
    let model = T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu).expect("model");
    drop(store);
    let load_s = t0.elapsed().as_secs_f64();
    let runs = 5;
    // encoder: 32-token input, batch 1; and 8 × 128 tokens
    let ids32: Vec<u32> = (0..32).map(|i| 100 + (i * 37) % 3000).collect();
    let in32 = Batch::new(ids32, None, 1, 32).unwrap();
    let ids8x128: Vec<u32> = (0..8 * 128).map(|i| 100 + (i * 53) % 3000).collect();
    let in8x128 = Batch::new(ids8x128, None, 8, 128).unwrap();
    let mut enc32 = vec![];
    let mut enc8 = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        model.encode(&in32).unwrap();
        enc32.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        model.encode(&in8x128).unwrap();
        enc8.push(t.elapsed().as_secs_f64());
    }
    // greedy: 32-token input, exactly 64 new tokens (EOS suppressed), as the anchors measure
    let new_tokens = 64;
    gen.max_new_tokens = Some(new_tokens);
    gen.min_new_tokens = Some(new_tokens);
    let mut gen_t = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        let out = greedy(&model, &in32, &gen, |_| true).unwrap();
        gen_t.push(t.elapsed().as_secs_f64());
        assert_eq!(out[0].len(), new_tokens + 1);
    }
    let (e32, e8, g) = (median(enc32), median(enc8), median(gen_t));
    let decode_tps = new_tokens as f64 / (g - e32);
    if json {
        println!(
            "{}",
            serde_json::json!({"runtime": "native", "load_s": load_s, "encoder_32_ms": e32 * 1e3, "encoder_8x128_tok_s": 1024.0 / e8,
                "generate_64_ms": g * 1e3, "decode_tok_s": decode_tps})
        );
    } else {
        println!("native: load {load_s:.2} s, encoder 32 tok {:.2} ms, encoder 8x128 {:.0} tok/s, generate 64 {:.1} ms, decode {decode_tps:.1} tok/s", e32 * 1e3, 1024.0 / e8, g * 1e3);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(|s| s.as_str()) {
        Some("make-random") if args.len() == 4 => make_random(Path::new(&args[2]), Path::new(&args[3])),
        Some("run") if args.len() >= 3 => run(Path::new(&args[2]), args.iter().any(|a| a == "--json")),
        _ => {
            eprintln!("usage: t5-bench make-random <config.json> <out-dir> | t5-bench run <model-dir> [--json]");
            std::process::exit(2);
        }
    }
}
