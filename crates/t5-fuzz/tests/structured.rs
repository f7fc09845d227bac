//! Structured fuzzing: configs and tensor tables drawn by bolero's generators (as safetensors' own
//! structured round-trip target), checked for the promises the loaders make.

use bolero::{check, TypeGenerator};
use serde_json::json;
use t5_core::WeightStore;
use t5_core::T5Config;

#[derive(Debug, TypeGenerator)]
struct Cfg {
    vocab_size: u32,
    d_model: u16,
    d_kv: u16,
    d_ff: u32,
    num_layers: u8,
    num_decoder_layers: Option<u32>,
    num_heads: u16,
    buckets: u16,
    max_distance: u32,
    eps: f64,
    ffp: u8,
    pad: Option<u64>,
    eos: Vec<u32>,
}

/// A config that loads gives in-range buckets for every distance, and overflow-free estimates.
#[test]
fn generated_configs_keep_their_promises() {
    check!().with_type::<Cfg>().with_iterations(3_000).for_each(|c| {
        let ffp = ["relu", "gated-gelu", "gated-silu", "gelu_new", "gated-", "tanh"][c.ffp as usize % 6];
        let v = json!({
            "vocab_size": c.vocab_size, "d_model": c.d_model, "d_kv": c.d_kv, "d_ff": c.d_ff,
            "num_layers": c.num_layers, "num_decoder_layers": c.num_decoder_layers, "num_heads": c.num_heads,
            "relative_attention_num_buckets": c.buckets, "relative_attention_max_distance": c.max_distance,
            "layer_norm_epsilon": if c.eps.is_finite() { json!(c.eps) } else { json!(null) },
            "feed_forward_proj": ffp, "pad_token_id": c.pad, "eos_token_id": c.eos,
        });
        if let Ok(cfg) = T5Config::from_json(&v.to_string()) {
            t5_fuzz::check_config_invariants(&cfg);
        }
    });
}

#[derive(Debug, TypeGenerator)]
struct Entry {
    dtype: u8,
    shape: Vec<u8>,
    /// perturbation of the data offsets (0: consistent)
    skew: i8,
}

const DTYPES: [(&str, usize); 6] = [("F32", 4), ("F16", 2), ("BF16", 2), ("I64", 8), ("U8", 1), ("F64", 8)];

/// A consistent table (contiguous offsets, sizes matching dtype × shape) always loads with every
/// name; any skew of an offset is an error or a load, never a panic.
#[test]
fn generated_tensor_tables_round_trip() {
    check!().with_type::<Vec<Entry>>().with_iterations(2_000).for_each(|entries| {
        let entries = &entries[..entries.len().min(12)];
        let mut header = serde_json::Map::new();
        let mut offset = 0usize;
        let mut consistent = true;
        for (i, e) in entries.iter().enumerate() {
            let (dtype, size) = DTYPES[e.dtype as usize % DTYPES.len()];
            let shape: Vec<usize> = e.shape.iter().take(4).map(|&d| d as usize % 9).collect();
            let bytes = shape.iter().product::<usize>() * size;
            let (start, end) = (offset as i64, (offset + bytes) as i64 + e.skew as i64);
            consistent &= e.skew == 0;
            header.insert(format!("t{i}"), json!({"dtype": dtype, "shape": shape, "data_offsets": [start, end.max(-1)]}));
            offset += bytes;
        }
        let h = serde_json::Value::Object(header).to_string().into_bytes();
        let mut file = (h.len() as u64).to_le_bytes().to_vec();
        file.extend(&h);
        file.resize(file.len() + offset, 7);
        let r = WeightStore::from_shards(vec![("model.safetensors".into(), file)]);
        if consistent {
            let store = r.unwrap_or_else(|e| panic!("consistent table refused: {e}"));
            for i in 0..entries.len() {
                assert!(store.names().iter().any(|n| n == &format!("t{i}")), "t{i} missing");
            }
        }
    });
}
