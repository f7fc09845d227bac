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
//! Tensor names (gguf-py `TensorNameMap` for `MODEL_ARCH.T5`) map onto transformers' names: `token_embd`
//! → `shared`, `output` → `lm_head`, `enc.blk.N.attn_{q,k,v,o}` → `encoder.block.N.layer.0.SelfAttention.*`,
//! `attn_norm`, `attn_rel_b`, `ffn_norm`, `ffn_gate` → `wi_0`, `ffn_up` → `wi_1` (gated) or `wi`,
//! `ffn_down` → `wo`, `dec.blk.N.cross_attn_*` → `layer.1.EncDecAttention.*`, `enc.output_norm` /
//! `dec.output_norm` → `final_layer_norm`. GGUF dims are innermost first, so a `[n, k]` weight is
//! stored as `[k, n]` with the same bytes.
//!
//! Tensor types: F32, F16, BF16 as they are; the 32-wide blocks of Q8_0 (f16 `d`, 32 × i8: `q·d`),
//! Q4_0 (f16 `d`, 16 bytes of nibbles, byte `i` = weight `i` low | weight `16 + i` high: `(q - 8)·d`)
//! and Q4_1 (f16 `d`, f16 `m`, nibbles: `q·d + m`) are converted without loss into the engine's
//! fused-kernel forms ([`crate::quant`]): Q8_0 → q8 with one f32 scale per block; Q4_0 / Q4_1 → q4
//! with groups of 32 (codes repacked into the 64-weight chunk layout, scale `d`, zero point 0 or
//! `m + 8d`, which is exact in f32 for f16 `d`, `m` of ordinary range and checked per block). Every
//! dequantized weight equals ggml's / gguf-py's `q·d (+ m)` bit for bit. Rows that are not a
//! multiple of 64 long fall back to q8 blocks (Q4_0: codes `q - 8`) or, for Q4_1, f32.

use crate::config::{GenerationConfig, T5Config};
use crate::error::{Result, T5Error};
use crate::quant::QWeight;
use crate::weights::WeightStore;

/// The magic at the start of every GGUF file.
pub const MAGIC: &[u8; 4] = b"GGUF";

/// The tensor types the engine reads (ggml's `ggml_type` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
}

/// ggml type names by id (for messages about the types the engine does not read).
fn ggml_type_name(id: u32) -> &'static str {
    match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    }
}

impl GgmlType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            30 => GgmlType::BF16,
            8 => GgmlType::Q8_0,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
        }
    }

    /// (weights per block, bytes per block)
    fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
        }
    }

    pub fn is_quantized(self) -> bool {
        matches!(self, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1)
    }
}

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
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    file: &'a str,
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
            8 => Value::String(self.string(what)?),
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
    let mut r = Reader { b: bytes, pos: 0, file };
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
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        let ty = r.u32("metadata value type")?;
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
            let d = r.u64("tensor dimensions")?;
            dims.push(usize::try_from(d).map_err(|_| r.bad(format!("tensor {name:?}: dimension {d}")))?);
        }
        let ty_id = r.u32("tensor type")?;
        let offset = r.u64("tensor offset")?;
        raw.push((name, dims, ty_id, offset));
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
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
        if dims[0] % bw != 0 {
            return Err(r.bad(format!("tensor {name:?} ({}): rows of {} are not whole {bw}-weight blocks", ty.name(), dims[0])));
        }
        let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| r.bad(format!("tensor {name:?}: {dims:?} overflows")))?;
        let size = numel / bw * bb;
        if offset % alignment as u64 != 0 {
            return Err(r.bad(format!("tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}")));
        }
        let start = (data_start as u64).checked_add(offset);
        let end = start.and_then(|s| s.checked_add(size as u64));
        match (start, end) {
            (Some(s), Some(e)) if e <= bytes.len() as u64 => tensors.push(TensorInfo { name, dims, ty, start: s as usize, end: e as usize }),
            _ => {
                return Err(r.bad(format!(
                    "truncated GGUF file: tensor {name:?} ({} bytes at offset {offset} after the header's {data_start}) ends past the file's {} bytes",
                    size,
                    bytes.len()
                )))
            }
        }
    }
    Ok(Gguf { version, metadata, tensors, alignment, data_start })
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

    fn uint(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| T5Error::BadConfig(format!("GGUF {key} is {v:?}, not an unsigned integer"))),
        }
    }

    fn required(&self, key: &str) -> Result<usize> {
        self.uint(key)?.ok_or_else(|| T5Error::BadConfig(format!("GGUF metadata has no {key}")))
    }
}

/// transformers' name of a T5 GGUF tensor (`None` for names outside the T5 map).
pub fn hf_name(gguf_name: &str, gated: bool) -> Option<String> {
    let base = gguf_name.strip_suffix(".weight")?;
    let fixed = match base {
        "token_embd" => Some("shared"),
        "output" => Some("lm_head"),
        "enc.output_norm" => Some("encoder.final_layer_norm"),
        "dec.output_norm" => Some("decoder.final_layer_norm"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(format!("{f}.weight"));
    }
    let (stack, rest) = if let Some(r) = base.strip_prefix("enc.blk.") {
        ("encoder", r)
    } else if let Some(r) = base.strip_prefix("dec.blk.") {
        ("decoder", r)
    } else {
        return None;
    };
    let (n, part) = rest.split_once('.')?;
    let n: usize = n.parse().ok()?;
    let dec = stack == "decoder";
    let ff = if dec { 2 } else { 1 };
    let wi = if gated { "wi_1" } else { "wi" };
    let tail = match part {
        "attn_q" => "layer.0.SelfAttention.q".to_string(),
        "attn_k" => "layer.0.SelfAttention.k".to_string(),
        "attn_v" => "layer.0.SelfAttention.v".to_string(),
        "attn_o" => "layer.0.SelfAttention.o".to_string(),
        "attn_norm" => "layer.0.layer_norm".to_string(),
        "attn_rel_b" => "layer.0.SelfAttention.relative_attention_bias".to_string(),
        "cross_attn_q" if dec => "layer.1.EncDecAttention.q".to_string(),
        "cross_attn_k" if dec => "layer.1.EncDecAttention.k".to_string(),
        "cross_attn_v" if dec => "layer.1.EncDecAttention.v".to_string(),
        "cross_attn_o" if dec => "layer.1.EncDecAttention.o".to_string(),
        "cross_attn_norm" if dec => "layer.1.layer_norm".to_string(),
        "cross_attn_rel_b" if dec => "layer.1.EncDecAttention.relative_attention_bias".to_string(),
        "ffn_norm" => format!("layer.{ff}.layer_norm"),
        "ffn_gate" => format!("layer.{ff}.DenseReluDense.wi_0"),
        "ffn_up" => format!("layer.{ff}.DenseReluDense.{wi}"),
        "ffn_down" => format!("layer.{ff}.DenseReluDense.wo"),
        _ => return None,
    };
    Some(format!("{stack}.block.{n}.{tail}.weight"))
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
    let d_model = g.required(&k("embedding_length"))?;
    let num_heads = g.required(&k("attention.head_count"))?;
    if num_heads == 0 {
        return Err(T5Error::BadConfig(format!("{file}: {arch}.attention.head_count is 0")));
    }
    let d_kv = match g.uint(&k("attention.key_length"))? {
        Some(v) => v,
        None => d_model / num_heads,
    };
    if let Some(v) = g.uint(&k("attention.value_length"))? {
        if v != d_kv {
            return Err(T5Error::BadConfig(format!("{file}: key_length {d_kv} and value_length {v} differ; T5 uses one d_kv")));
        }
    }
    let num_layers = g.required(&k("block_count"))?;
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
        "d_ff": g.required(&k("feed_forward_length"))?,
        "num_layers": num_layers,
        "num_decoder_layers": g.uint(&k("decoder_block_count"))?.unwrap_or(num_layers),
        "num_heads": num_heads,
        "relative_attention_num_buckets": g.uint(&k("attention.relative_buckets_count"))?.unwrap_or(32),
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
fn expected_tensors(cfg: &T5Config, encoder_only: bool) -> Result<Vec<(String, Vec<usize>)>> {
    let (d, inner, ff) = (cfg.d_model, cfg.inner_dim(), cfg.d_ff);
    let gated = cfg.feed_forward()?.gated;
    let mut out = vec![("token_embd.weight".to_string(), vec![d, cfg.vocab_size])];
    let mut stack = |p: &str, layers: usize, dec: bool| {
        out.push((format!("{p}.output_norm.weight"), vec![d]));
        for i in 0..layers {
            let b = format!("{p}.blk.{i}");
            let mut attn = |pre: &str| {
                for x in ["q", "k", "v"] {
                    out.push((format!("{b}.{pre}_{x}.weight"), vec![d, inner]));
                }
                out.push((format!("{b}.{pre}_o.weight"), vec![inner, d]));
                out.push((format!("{b}.{pre}_norm.weight"), vec![d]));
            };
            attn("attn");
            if dec {
                attn("cross_attn");
            }
            if i == 0 {
                out.push((format!("{b}.attn_rel_b.weight"), vec![cfg.num_heads, cfg.relative_attention_num_buckets]));
            }
            out.push((format!("{b}.ffn_norm.weight"), vec![d]));
            if gated {
                out.push((format!("{b}.ffn_gate.weight"), vec![d, ff]));
            }
            out.push((format!("{b}.ffn_up.weight"), vec![d, ff]));
            out.push((format!("{b}.ffn_down.weight"), vec![ff, d]));
        }
    };
    stack("enc", cfg.num_layers, false);
    if !encoder_only {
        stack("dec", cfg.decoder_layers(), true);
        if !cfg.tie_word_embeddings {
            out.push(("output.weight".to_string(), vec![d, cfg.vocab_size]));
        }
    }
    Ok(out)
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

#[inline]
fn f16(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Code `j` (0..32) of a Q4_0 / Q4_1 block's 16 nibble bytes.
#[inline]
fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 15
    } else {
        qs[j - 16] >> 4
    }
}

/// ggml's dequantization of one block (`q·d`, `(q - 8)·d`, `q·d + m` in f32), the reference the
/// conversions are tested against.
pub fn dequantize_block(ty: GgmlType, block: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => out[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]),
        GgmlType::F16 => out[0] = f16(block),
        GgmlType::BF16 => out[0] = half::bf16::from_le_bytes([block[0], block[1]]).to_f32(),
        GgmlType::Q8_0 => {
            let d = f16(block);
            for j in 0..32 {
                out[j] = block[2 + j] as i8 as f32 * d;
            }
        }
        GgmlType::Q4_0 => {
            let d = f16(block);
            for j in 0..32 {
                out[j] = (nibble(&block[2..], j) as i8 - 8) as f32 * d;
            }
        }
        GgmlType::Q4_1 => {
            let (d, m) = (f16(block), f16(&block[2..]));
            for j in 0..32 {
                out[j] = d * nibble(&block[4..], j) as f32 + m;
            }
        }
    }
}

/// A `[n, k]` quantized GGUF tensor (`bytes`: its blocks) in the engine's fused-kernel form, without
/// loss (module docs).
pub fn to_qweight(ty: GgmlType, n: usize, k: usize, bytes: &[u8]) -> QWeight {
    let (bw, bb) = ty.block();
    debug_assert!(k % bw == 0 && bytes.len() == n * k / bw * bb);
    let blocks = bytes.chunks_exact(bb);
    match ty {
        GgmlType::F32 => QWeight::F32 { n, k, data: bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect() },
        GgmlType::F16 => QWeight::F16 { n, k, data: bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect() },
        GgmlType::BF16 => QWeight::BF16 { n, k, data: bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect() },
        GgmlType::Q8_0 => {
            let mut codes = Vec::with_capacity(n * k);
            let mut scales = Vec::with_capacity(n * k / 32);
            for b in blocks {
                scales.push(f16(b));
                codes.extend(b[2..34].iter().map(|&q| q as i8));
            }
            QWeight::Q8 { n, k, codes, scales }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let q41 = ty == GgmlType::Q4_1;
            let off = if q41 { 4 } else { 2 };
            let mut scales = Vec::with_capacity(n * k / 32);
            let mut zeros = Vec::with_capacity(n * k / 32);
            let mut exact = true;
            for b in bytes.chunks_exact(bb) {
                let d = f16(b);
                scales.push(d);
                if q41 {
                    let m = f16(&b[2..]);
                    let z = m + 8.0 * d;
                    // `(q - 8)·d + z` equals `q·d + m` bit for bit when `z` is exact (both are
                    // the one rounding of the same real number: the products are exact)
                    exact &= m as f64 + 8.0 * d as f64 == z as f64;
                    zeros.push(z);
                } else {
                    // -0: `(q - 8)·d + z` keeps the sign of a zero product, as ggml's `(q - 8)·d`
                    zeros.push(-0.0);
                }
            }
            if k % 64 == 0 && exact {
                let mut packed = vec![0u8; n * k / 2];
                for (c, dst) in packed.chunks_exact_mut(32).enumerate() {
                    // chunk c of the matrix = blocks 2c (low nibbles) and 2c + 1 (high nibbles)
                    let lo = &bytes[2 * c * bb + off..2 * c * bb + bb];
                    let hi = &bytes[(2 * c + 1) * bb + off..(2 * c + 1) * bb + bb];
                    for (i, o) in dst.iter_mut().enumerate() {
                        *o = nibble(lo, i) | (nibble(hi, i) << 4);
                    }
                }
                QWeight::Q4 { n, k, group: 32, packed, scales, zeros }
            } else if !q41 {
                // rows not a multiple of 64: Q4_0 is q8 with one scale per block, codes q - 8
                let mut codes = Vec::with_capacity(n * k);
                for b in blocks {
                    codes.extend((0..32).map(|j| nibble(&b[2..], j) as i8 - 8));
                }
                QWeight::Q8 { n, k, codes, scales }
            } else {
                let mut data = vec![0.0f32; n * k];
                for (b, o) in blocks.zip(data.chunks_exact_mut(32)) {
                    dequantize_block(ty, b, o);
                }
                QWeight::F32 { n, k, data }
            }
        }
    }
}

/// The names of a store's GGUF tensors (for [`WeightStore::add_gguf`]): `(name, shape, type, start, end)`.
pub type Entries = Vec<(String, Vec<usize>, GgmlType, usize, usize)>;

/// Read-only view used by the conversion tests: each tensor's bytes and info.
pub fn tensor_bytes<'a>(bytes: &'a [u8], t: &TensorInfo) -> &'a [u8] {
    &bytes[t.start..t.end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: f32) -> [u8; 2] {
        half::f16::from_f32(v).to_le_bytes()
    }

    /// `n` rows of `k / 32` blocks of type `ty`, scales and codes varied.
    fn blocks(ty: GgmlType, n: usize, k: usize, d: f32, m: f32) -> Vec<u8> {
        let mut out = Vec::new();
        for b in 0..n * k / 32 {
            let d = d * (1.0 + b as f32 * 0.25) * if b % 3 == 1 { -1.0 } else { 1.0 };
            match ty {
                GgmlType::Q8_0 => {
                    out.extend(h(d));
                    out.extend((0..32).map(|j| ((b * 37 + j * 11) % 256) as u8));
                }
                GgmlType::Q4_0 => {
                    out.extend(h(d));
                    out.extend((0..16).map(|j| ((b * 53 + j * 29) % 256) as u8));
                }
                GgmlType::Q4_1 => {
                    out.extend(h(d.abs()));
                    out.extend(h(m * (b as f32 - 1.5)));
                    out.extend((0..16).map(|j| ((b * 53 + j * 29) % 256) as u8));
                }
                _ => unreachable!(),
            }
        }
        out
    }

    fn reference(ty: GgmlType, n: usize, k: usize, bytes: &[u8]) -> Vec<f32> {
        let bb = ty.block().1;
        let mut out = vec![0.0f32; n * k];
        for (b, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(32)) {
            dequantize_block(ty, b, o);
        }
        out
    }

    #[test]
    fn every_row_length_converts_without_loss() {
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
            for k in [32, 64, 96, 128] {
                let (n, d, m) = (3, 0.0123, 0.05);
                let bytes = blocks(ty, n, k, d, m);
                let q = to_qweight(ty, n, k, &bytes);
                let form = match (&q, ty) {
                    (QWeight::Q8 { scales, .. }, _) if scales.len() == n * k / 32 => "q8 blocks",
                    (QWeight::Q4 { group: 32, .. }, GgmlType::Q4_0 | GgmlType::Q4_1) if k % 64 == 0 => "q4 g32",
                    (QWeight::F32 { .. }, GgmlType::Q4_1) if k % 64 != 0 => "f32",
                    (other, _) => panic!("{ty:?} k={k}: {:?}", other.dtype()),
                };
                let want = reference(ty, n, k, &bytes);
                let got = q.to_tensor().data;
                for i in 0..n * k {
                    assert_eq!(got[i].to_bits(), want[i].to_bits(), "{ty:?} k={k} ({form}) [{i}]: {} vs {}", got[i], want[i]);
                }
            }
        }
    }

    #[test]
    fn q4_1_with_an_inexact_zero_point_stays_exact_in_f32() {
        // m tiny next to 8d: m + 8d is not representable in f32, so the tensor is kept dequantized
        let (n, k) = (1, 64);
        let bytes = blocks(GgmlType::Q4_1, n, k, 1000.0, 6.0e-8);
        let q = to_qweight(GgmlType::Q4_1, n, k, &bytes);
        assert!(matches!(q, QWeight::F32 { .. }), "{:?}", q.dtype());
        assert_eq!(q.to_tensor().data, reference(GgmlType::Q4_1, n, k, &bytes));
    }

    #[test]
    fn tensor_names_map_onto_transformers() {
        assert_eq!(hf_name("token_embd.weight", false).unwrap(), "shared.weight");
        assert_eq!(hf_name("output.weight", false).unwrap(), "lm_head.weight");
        assert_eq!(hf_name("enc.blk.3.attn_rel_b.weight", false).unwrap(), "encoder.block.3.layer.0.SelfAttention.relative_attention_bias.weight");
        assert_eq!(hf_name("enc.blk.0.ffn_up.weight", false).unwrap(), "encoder.block.0.layer.1.DenseReluDense.wi.weight");
        assert_eq!(hf_name("enc.blk.0.ffn_up.weight", true).unwrap(), "encoder.block.0.layer.1.DenseReluDense.wi_1.weight");
        assert_eq!(hf_name("dec.blk.1.ffn_gate.weight", true).unwrap(), "decoder.block.1.layer.2.DenseReluDense.wi_0.weight");
        assert_eq!(hf_name("dec.blk.1.cross_attn_norm.weight", true).unwrap(), "decoder.block.1.layer.1.layer_norm.weight");
        assert_eq!(hf_name("dec.blk.1.cross_attn_o.weight", true).unwrap(), "decoder.block.1.layer.1.EncDecAttention.o.weight");
        assert_eq!(hf_name("dec.output_norm.weight", true).unwrap(), "decoder.final_layer_norm.weight");
        assert_eq!(hf_name("enc.blk.0.cross_attn_q.weight", true), None);
        assert_eq!(hf_name("blk.0.attn_q.weight", true), None);
    }
}
