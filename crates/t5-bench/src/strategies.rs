//! `t5-bench strategies <model-dir> [--json]`: speed and memory of each generation strategy (greedy,
//! beam 4, sampling), each with the growing and the static KV cache. 32-token input, batch 1,
//! exactly 64 new tokens (EOS suppressed with min_new_tokens), median of 3 runs. Memory: heap
//! bytes allocated during the call and the peak heap above the level before it, counted by this
//! binary's global allocator (so the numbers are exact and independent of the OS), plus the
//! self-attention KV cache size the strategy needs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use t5_core::generate::generate;
use t5_core::hub::load_dir;
use t5_core::{Batch, Cpu, ModelKind, T5};

/// The system allocator, counting live bytes, the peak of live bytes and all bytes allocated.
pub struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let live = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(live, Relaxed);
            TOTAL.fetch_add(l.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new > l.size() {
                let live = LIVE.fetch_add(new - l.size(), Relaxed) + new - l.size();
                PEAK.fetch_max(live, Relaxed);
                TOTAL.fetch_add(new - l.size(), Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub fn run(dir: &Path, json: bool) {
    let (cfg, base, store) = load_dir(dir).expect("load");
    let model = T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu).expect("model");
    drop(store);
    let ids: Vec<u32> = (0..32).map(|i| 100 + (i * 37) % 3000).collect();
    let input = Batch::new(ids, None, 1, 32).unwrap();
    let new_tokens = 64usize;
    let strategies: [(&str, &str); 3] = [
        ("greedy", r#"{}"#),
        ("beam 4", r#"{"num_beams": 4}"#),
        ("sampling", r#"{"do_sample": true, "top_k": 50, "top_p": 0.95, "temperature": 0.8, "seed": 1}"#),
    ];
    let mut rows = vec![];
    for (name, opts) in strategies {
        for cache in ["dynamic", "static"] {
            let mut gen = base.clone();
            gen.apply_json(&serde_json::from_str(opts).unwrap()).unwrap();
            gen.max_new_tokens = Some(new_tokens);
            gen.min_new_tokens = Some(new_tokens);
            gen.cache_implementation = Some(cache.into());
            let rows_decoded = gen.num_beams;
            // one warm-up run, then 3 timed
            generate(&model, &input, &gen, |_| true).unwrap();
            let (mut times, mut allocated, mut peak) = (vec![], 0usize, 0usize);
            for _ in 0..3 {
                let before = LIVE.load(Relaxed);
                PEAK.store(before, Relaxed);
                let total0 = TOTAL.load(Relaxed);
                let t = Instant::now();
                let out = generate(&model, &input, &gen, |_| true).unwrap();
                times.push(t.elapsed().as_secs_f64());
                allocated = TOTAL.load(Relaxed) - total0;
                peak = PEAK.load(Relaxed) - before;
                assert_eq!(out.sequences[0].len(), new_tokens + 1);
            }
            let s = median(times);
            // self-attention K and V of every decoder layer at full length, f32
            let kv_mb = (2 * cfg.decoder_layers() * rows_decoded * new_tokens * cfg.inner_dim() * 4) as f64 / 1e6;
            rows.push(serde_json::json!({"strategy": name, "cache": cache, "generate_64_ms": s * 1e3, "tok_s": new_tokens as f64 / s,
                "allocated_mb": allocated as f64 / 1e6, "peak_heap_mb": peak as f64 / 1e6, "kv_cache_mb": kv_mb}));
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!("generation strategies, native, batch 1, 32-token input, 64 new tokens, median of 3");
        println!("| strategy | KV cache | generate 64 ms | tok/s | heap allocated MB | peak heap MB | self-attn KV MB |");
        println!("|---|---|---|---|---|---|---|");
        for r in rows {
            println!(
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
                r["strategy"].as_str().unwrap(),
                r["cache"].as_str().unwrap(),
                r["generate_64_ms"].as_f64().unwrap(),
                r["tok_s"].as_f64().unwrap(),
                r["allocated_mb"].as_f64().unwrap(),
                r["peak_heap_mb"].as_f64().unwrap(),
                r["kv_cache_mb"].as_f64().unwrap()
            );
        }
    }
}
