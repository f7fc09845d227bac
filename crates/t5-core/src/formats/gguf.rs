//! T5 checkpoints in GGUF, the file format of llama.cpp / ggml, as its `convert_hf_to_gguf.py`
//! (class `T5Model`) and `llama-quantize` write them.
//!
//! File layout (versions 2 and 3, little-endian): magic `GGUF`, `u32` version, `u64` tensor count,
//! `u64` metadata count, the metadata key / value pairs (`u64`-length strings, typed values, arrays),
//! the tensor infos (name, `u32` dimension count, `u64` dims innermost first, `u32` ggml type, `u64`
//! offset), then the tensor data from the next multiple of `general.alignment` (default 32), each
//! tensor at its offset from there.
//!
//! Architecture `t5` (or `t5encoder`, an encoder-only file): the hyperparameters are `t5.*` keys
//! (`embedding_length`, `feed_forward_length`, `block_count`, `decoder_block_count`,
//! `attention.head_count`, `attention.key_length` / `value_length`,
//! `attention.layer_norm_rms_epsilon` (or `layer_norm_epsilon`), `attention.relative_buckets_count`,
//! `context_length`, `decoder_start_token_id`); the special ids are `tokenizer.ggml.eos_token_id` /
//! `padding_token_id`. What GGUF does not store is what llama.cpp assumes: the feed-forward is
//! gated-gelu when the blocks have `ffn_gate` and relu otherwise, the relative attention maximum
//! distance is 128, and the head is tied to the embedding when there is no `output` tensor (as
//! transformers saves a tied T5: then the decoder output is rescaled by `d_model^-0.5` before the
//! head, as transformers does; llama.cpp skips that rescale, which changes logits but not argmax).
//!
//! Tensor names (gguf-py `TensorNameMap` for `MODEL_ARCH.T5`, in the one table [`crate::names`]) map onto transformers' names: `token_embd`
//! → `shared`, `output` → `lm_head`, `enc.blk.N.attn_{q,k,v,o}` → `encoder.block.N.layer.0.SelfAttention.*`,
//! `attn_norm`, `attn_rel_b`, `ffn_norm`, `ffn_gate` → `wi_0`, `ffn_up` → `wi_1` (gated) or `wi`,
//! `ffn_down` → `wo`, `dec.blk.N.cross_attn_*` → `layer.1.EncDecAttention.*`, `enc.output_norm` /
//! `dec.output_norm` → `final_layer_norm`. GGUF dims are innermost first, so a `[n, k]` weight is
//! stored as `[k, n]` with the same bytes.
//!
//! Tensor types: F32, F16, BF16 as they are; Q8_0, Q4_0 and Q4_1 blocks are converted without loss
//! into the engine's fused-kernel forms ([`crate::dtype::ggml`]).

use crate::config::{GenerationConfig, T5Config};
use crate::error::{Result, T5Error};
pub use crate::dtype::ggml::GgmlType;
use crate::dtype::ggml::ggml_type_name;
use crate::names::{self, Weight};
use super::store::WeightStore;

/// The magic at the start of every GGUF file.
pub const MAGIC: &[u8; 4] = b"GGUF";


/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// innermost first, as ggml's `ne`
    pub dims: Vec<usize>,
    pub ty: GgmlType,
    /// byte range in the file
    pub start: usize,
    pub end: usize,
}

/// A parsed GGUF header: version, metadata, tensor infos (with absolute byte ranges).
#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: usize,
    pub data_start: usize,
    /// the file's length: what every size and count of the metadata is bounded by
    pub file_len: u64,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    file: &'a str,
    /// bytes the decoded metadata takes in memory so far (a one-byte array element becomes a
    /// [`Value`]), bounded by `limit`
    decoded: u64,
    /// [`metadata_limit`] of this file
    limit: u64,
}

/// Most memory the decoded metadata may take (a real T5's, with a 250k-token vocabulary, takes ~30 MB).
pub const MAX_METADATA_BYTES: u64 = 64 << 20;
/// Decoded metadata may take this many times the file's size (plus [`METADATA_FLOOR`]): a real
/// file's metadata decodes to ~11× its own bytes (strings, 4-byte scores and a one-byte charsmap
/// of 32-byte values) and the file also holds the weights; a one-byte array element alone decodes to
/// 32 bytes, so a small file of nothing but metadata cannot claim 32× its size.
pub const METADATA_FACTOR: u64 = 16;
/// What any file's metadata may take whatever its size.
pub const METADATA_FLOOR: u64 = 1 << 20;
/// What one decoded metadata value is charged: `size_of::<Value>()` on 64-bit hosts, charged alike on
/// every target (a `Value` is smaller on wasm32), so a file is accepted or refused the same everywhere.
pub const VALUE_BYTES: u64 = 32;
const _: () = assert!(std::mem::size_of::<Value>() as u64 <= VALUE_BYTES);

/// Most memory the decoded metadata of a `file_len`-byte GGUF file may take: bounded by what the
/// file can hold as well as by [`MAX_METADATA_BYTES`].
pub fn metadata_limit(file_len: u64) -> u64 {
    file_len.saturating_mul(METADATA_FACTOR).saturating_add(METADATA_FLOOR).min(MAX_METADATA_BYTES)
}

impl<'a> Reader<'a> {
    fn bad(&self, msg: String) -> T5Error {
        T5Error::BadWeights { file: Some(self.file.to_string()), msg }
    }
    fn truncated(&self, what: &str) -> T5Error {
        self.bad(format!("truncated GGUF file: {} bytes end inside the {what} at byte {}", self.b.len(), self.pos))
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.b.len() => {
                let s = &self.b[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(self.truncated(what)),
        }
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    /// A count of items each at least `min_bytes` long: more than the rest of the file could hold is corrupt.
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.b.len() - self.pos) as u64;
        if n.saturating_mul(min_bytes as u64) > left {
            return Err(self.truncated(&format!("{what} ({n} items)")));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).map_err(|_| self.truncated(what))?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.bad(format!("{what} is not UTF-8")))
    }
    /// Count `bytes` of decoded metadata against [`metadata_limit`] before they are allocated.
    fn charge(&mut self, bytes: u64, what: &str) -> Result<()> {
        self.decoded = self.decoded.saturating_add(bytes);
        if self.decoded > self.limit {
            let (limit, len) = (self.limit, self.b.len());
            return Err(T5Error::ModelTooLarge(format!(
                "{}: GGUF metadata ({what}) decodes to more than {limit} bytes (the most a {len}-byte file's metadata may take: {METADATA_FACTOR}× its size + {METADATA_FLOOR}, at most {MAX_METADATA_BYTES})",
                self.file
            )));
        }
        Ok(())
    }
    fn value(&mut self, ty: u32, what: &str, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.u8(what)?),
            1 => Value::I8(self.u8(what)? as i8),
            2 => Value::U16(self.u16(what)?),
            3 => Value::I16(self.u16(what)? as i16),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(self.u32(what)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(what)?)),
            7 => match self.u8(what)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.bad(format!("{what}: boolean byte {b}"))),
            },
            8 => {
                let s = self.string(what)?;
                self.charge(s.len() as u64, what)?;
                Value::String(s)
            }
            9 => {
                if depth > 4 {
                    return Err(self.bad(format!("{what}: arrays nested too deeply")));
                }
                let ety = self.u32(what)?;
                let min = match ety {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => return Err(self.bad(format!("{what}: unknown metadata value type {other}"))),
                };
                let n = self.count(what, min)?;
                self.charge((n as u64).saturating_mul(VALUE_BYTES), what)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(ety, what, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(self.u64(what)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(what)?)),
            other => return Err(self.bad(format!("{what}: unknown metadata value type {other}"))),
        })
    }
}

/// Parse the header of a GGUF file (`bytes` is the whole file): metadata and tensor infos, every
/// tensor's byte range checked against the file. Bad magic, an unknown version, a truncated file →
/// [`T5Error::BadWeights`]; a tensor type the engine does not read → [`T5Error::UnsupportedDtype`].
pub fn parse(bytes: &[u8], file: &str) -> Result<Gguf> {
    let mut r = Reader { b: bytes, pos: 0, file, decoded: 0, limit: metadata_limit(bytes.len() as u64) };
    let magic = r.take(4, "magic")?;
    if magic != MAGIC {
        return Err(r.bad(format!("not a GGUF file: magic {magic:02x?}, expected \"GGUF\"")));
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(r.bad(format!("GGUF version {version} is not supported (2 and 3 are)")));
    }
    // a tensor info is at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes
    let n_tensors = r.count("tensor count", 24)?;
    let n_kv = r.count("metadata count", 12)?;
    let mut metadata = Vec::with_capacity(n_kv);
    let mut keys = std::collections::HashSet::new();
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        if !keys.insert(key.clone()) {
            return Err(r.bad(format!("metadata key {key:?} appears twice")));
        }
        let ty = r.u32("metadata value type")?;
        r.charge(VALUE_BYTES + key.len() as u64, "keys")?;
        let v = r.value(ty, &format!("metadata value {key:?}"), 0)?;
        metadata.push((key, v));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => 32,
        Some((_, v)) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
            _ => return Err(r.bad(format!("general.alignment {v:?} is not a power of two"))),
        },
    };
    let mut raw = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = r.string("tensor name")?;
        let n_dims = r.u32("tensor dimension count")? as usize;
        if n_dims == 0 || n_dims > 4 {
            return Err(r.bad(format!("tensor {name:?} has {n_dims} dimensions (1 to 4 expected)")));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            dims.push(r.u64("tensor dimensions")?);
        }
        let ty_id = r.u32("tensor type")?;
        let offset = r.u64("tensor offset")?;
        raw.push((name, dims, ty_id, offset));
    }
    // 64-bit arithmetic throughout: on wasm32 a usize product wraps (a 4 GiB tensor would be 0 bytes)
    let data_start = (r.pos as u64).div_ceil(alignment as u64) * alignment as u64;
    let mut tensors = Vec::with_capacity(raw.len());
    let mut seen = std::collections::HashSet::new();
    for (name, dims, ty_id, offset) in raw {
        if !seen.insert(name.clone()) {
            return Err(r.bad(format!("tensor {name:?} appears twice")));
        }
        let ty = GgmlType::from_id(ty_id).ok_or_else(|| T5Error::UnsupportedDtype {
            name: name.clone(),
            dtype: format!("GGUF {} (ggml type {ty_id}); the engine reads F32, F16, BF16, Q8_0, Q4_0 and Q4_1", ggml_type_name(ty_id)),
        })?;
        let (bw, bb) = ty.block();
        let (bw, bb) = (bw as u64, bb as u64);
        if dims[0] % bw != 0 {
            return Err(r.bad(format!("tensor {name:?} ({}): rows of {} are not whole {bw}-weight blocks", ty.name(), dims[0])));
        }
        let size = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|numel| (numel / bw).checked_mul(bb))
            .ok_or_else(|| r.bad(format!("tensor {name:?}: dimensions {dims:?} overflow 64 bits")))?;
        if offset % alignment as u64 != 0 {
            return Err(r.bad(format!("tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}")));
        }
        let start = data_start.checked_add(offset);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            // within the file, so every number below fits a usize
            (Some(s), Some(e)) if e <= bytes.len() as u64 => {
                let dims = dims.iter().map(|&d| d as usize).collect();
                tensors.push(TensorInfo { name, dims, ty, start: s as usize, end: e as usize })
            }
            _ => {
                return Err(r.bad(format!(
                    "truncated GGUF file: tensor {name:?} ({size} bytes at offset {offset} after the header's {data_start}) ends past the file's {} bytes",
                    bytes.len()
                )))
            }
        }
    }
    Ok(Gguf { version, metadata, tensors, alignment, data_start: data_start as usize, file_len: bytes.len() as u64 })
}

impl Gguf {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// An unsigned integer of the metadata, checked to fit 64 bits and this platform's usize (never
    /// truncated: 4294967297 is not 1 on wasm32).
    fn uint(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let x = v.as_u64().ok_or_else(|| T5Error::BadConfig(format!("GGUF {key} is {v:?}, not an unsigned integer")))?;
                usize::try_from(x).map(Some).map_err(|_| T5Error::BadConfig(format!("GGUF {key} is {x}, too large for this platform")))
            }
        }
    }

    /// [`Gguf::uint`] for a count or size, bounded by what the file can hold (`bound`, named by `what`).
    fn bounded(&self, key: &str, bound: u64, what: &str) -> Result<Option<usize>> {
        match self.uint(key)? {
            Some(x) if x as u64 > bound => Err(T5Error::BadConfig(format!("GGUF {key} is {x}, more than the file can hold ({what} {bound})"))),
            x => Ok(x),
        }
    }

}

/// transformers' name of a T5 GGUF tensor (`None` for names outside the T5 map), by the one
/// tensor-name table ([`crate::names`]).
pub fn hf_name(gguf_name: &str, gated: bool) -> Option<String> {
    Weight::from_gguf(gguf_name, gated).map(Weight::hf_name)
}

/// The T5 config a GGUF file describes (see the module docs for what GGUF leaves implicit).
pub fn config(g: &Gguf, file: &str) -> Result<T5Config> {
    let arch = g.architecture().ok_or_else(|| T5Error::BadConfig(format!("{file}: GGUF metadata has no general.architecture")))?;
    let encoder_only = match arch {
        "t5" => false,
        "t5encoder" => true,
        other => {
            return Err(T5Error::BadConfig(format!(
                "{file}: GGUF general.architecture is {other:?}; this engine runs T5 (\"t5\" or \"t5encoder\")"
            )))
        }
    };
    let k = |s: &str| format!("{arch}.{s}");
    // every size is a tensor dimension, so at most the file's length; every layer count at most the
    // number of tensors (a corrupt count is refused before anything is built from it)
    let (len, n_t) = (g.file_len, g.tensors.len() as u64);
    let size = |key: &str| g.bounded(key, len, "its length is");
    let required = |key: &str| size(key)?.ok_or_else(|| T5Error::BadConfig(format!("{file}: GGUF metadata has no {key}")));
    let d_model = required(&k("embedding_length"))?;
    let num_heads = required(&k("attention.head_count"))?;
    if num_heads == 0 {
        return Err(T5Error::BadConfig(format!("{file}: {arch}.attention.head_count is 0")));
    }
    let d_kv = match size(&k("attention.key_length"))? {
        Some(v) => v,
        None => d_model / num_heads,
    };
    if num_heads.checked_mul(d_kv).is_none_or(|inner| inner as u64 > len) {
        return Err(T5Error::BadConfig(format!("{file}: {arch}.attention.head_count {num_heads} × key_length {d_kv} is more than the file can hold")));
    }
    if let Some(v) = size(&k("attention.value_length"))? {
        if v != d_kv {
            return Err(T5Error::BadConfig(format!("{file}: key_length {d_kv} and value_length {v} differ; T5 uses one d_kv")));
        }
    }
    let num_layers = g.bounded(&k("block_count"), n_t, "tensors:")?.ok_or_else(|| T5Error::BadConfig(format!("{file}: GGUF metadata has no {}", k("block_count"))))?;
    let eps = [k("attention.layer_norm_rms_epsilon"), k("attention.layer_norm_epsilon")]
        .iter()
        .find_map(|key| g.get(key))
        .map(|v| v.as_f64().ok_or_else(|| T5Error::BadConfig(format!("{file}: layer norm epsilon {v:?} is not a number"))))
        .transpose()?
        .unwrap_or(1e-6);
    let emb = g.tensor("token_embd.weight").ok_or_else(|| T5Error::MissingTensor("token_embd.weight".into()))?;
    if emb.dims.len() != 2 {
        return Err(T5Error::ShapeMismatch { name: "token_embd.weight".into(), expected: vec![d_model, 0], found: emb.dims.clone() });
    }
    let vocab_size = emb.dims[1];
    let gated = g.tensors.iter().any(|t| t.name.ends_with(".ffn_gate.weight"));
    let pad = g.uint("tokenizer.ggml.padding_token_id")?.unwrap_or(0);
    let eos = g.uint("tokenizer.ggml.eos_token_id")?.unwrap_or(1);
    let mut cfg = serde_json::json!({
        "model_type": "t5",
        "architectures": [if encoder_only { "T5EncoderModel" } else { "T5ForConditionalGeneration" }],
        "vocab_size": vocab_size,
        "d_model": d_model,
        "d_kv": d_kv,
        "d_ff": required(&k("feed_forward_length"))?,
        "num_layers": num_layers,
        "num_decoder_layers": g.bounded(&k("decoder_block_count"), n_t, "tensors:")?.unwrap_or(num_layers),
        "num_heads": num_heads,
        "relative_attention_num_buckets": size(&k("attention.relative_buckets_count"))?.unwrap_or(32),
        "relative_attention_max_distance": 128,
        "layer_norm_epsilon": eps,
        "feed_forward_proj": if gated { "gated-gelu" } else { "relu" },
        "tie_word_embeddings": g.tensor("output.weight").is_none(),
        "is_encoder_decoder": !encoder_only,
        "pad_token_id": pad,
        "eos_token_id": eos,
        "decoder_start_token_id": g.uint(&k("decoder_start_token_id"))?.unwrap_or(pad),
    });
    if let Some(n) = g.uint(&k("context_length"))? {
        cfg["n_positions"] = n.into();
    }
    let cfg = T5Config::from_json(&cfg.to_string())?;
    cfg.validate()?;
    Ok(cfg)
}

/// Every tensor the config implies, by GGUF name, with its GGUF dims (innermost first); `output`
/// only when the head is untied.
fn expected_tensors(cfg: &T5Config, encoder_only: bool) -> Result<impl Iterator<Item = (String, Vec<usize>)> + '_> {
    let gated = cfg.feed_forward()?.gated;
    Ok(names::model_weights(cfg, gated, !encoder_only, !cfg.tie_word_embeddings).filter_map(move |w| {
        let dims = w.shape(cfg).into_iter().rev().collect();
        w.gguf_name().map(|n| (n, dims))
    }))
}

/// Load a T5 GGUF file: its config (from the metadata), generation config (from the model
/// config) and weights, every tensor the config implies checked by its GGUF name
/// ([`T5Error::MissingTensor`], [`T5Error::ShapeMismatch`] with GGUF dims, innermost first).
pub fn load(file: &str, bytes: Vec<u8>) -> Result<(T5Config, GenerationConfig, WeightStore)> {
    let g = parse(&bytes, file)?;
    let cfg = config(&g, file)?;
    let encoder_only = g.architecture() == Some("t5encoder");
    for (name, dims) in expected_tensors(&cfg, encoder_only)? {
        let t = g.tensor(&name).ok_or_else(|| T5Error::MissingTensor(name.clone()))?;
        if t.dims != dims {
            return Err(T5Error::ShapeMismatch { name, expected: dims, found: t.dims.clone() });
        }
    }
    let gated = cfg.feed_forward()?.gated;
    let mut entries = Vec::new();
    for t in &g.tensors {
        // tensors outside the T5 map keep their GGUF names
        let name = hf_name(&t.name, gated).unwrap_or_else(|| t.name.clone());
        let shape: Vec<usize> = t.dims.iter().rev().copied().collect();
        entries.push((name, shape, t.ty, t.start, t.end));
    }
    let mut store = WeightStore::new();
    store.add_gguf(file, bytes, entries)?;
    let generation = GenerationConfig::from_model_config(&cfg);
    Ok((cfg, generation, store))
}

/// Whether `bytes` start like a GGUF file.
pub fn is_gguf(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && &bytes[..4] == MAGIC
}

/// The tensors of a GGUF file for [`WeightStore::add_gguf`]: `(name, shape, type, start, end)`.
pub use super::store::GgmlEntries as Entries;

/// Read-only view used by the conversion tests: each tensor's bytes and info.
pub fn tensor_bytes<'a>(bytes: &'a [u8], t: &TensorInfo) -> &'a [u8] {
    &bytes[t.start..t.end]
}

