//! Checkpoint reading: one or more safetensors files (sharded checkpoints list their files in
//! `model.safetensors.index.json`), tensors looked up by transformers' names and converted
//! from f32 / f16 / bf16 to f32 host tensors on demand, with shape checks that name the tensor.

use crate::error::{Result, T5Error};
use crate::tensor::Tensor;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::HashMap;

struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
    /// a quantized GGUF tensor (`dtype` is then `U8`, the raw blocks)
    ggml: Option<crate::gguf::GgmlType>,
}

/// The tensors of a checkpoint, possibly spread over several shard files.
///
/// Tensors arrive either as whole files ([`WeightStore::add_shard`], [`WeightStore::add_file`]:
/// the file's bytes are kept until the model is built) or streamed piece by piece
/// ([`ShardStream`]: each tensor is kept in its own buffer, and the linear weights the model
/// loader converts are converted to the requested storage form as soon as they are complete, so
/// neither the whole file nor its f32 form is ever held).
pub struct WeightStore {
    shards: Vec<Vec<u8>>,
    names: Vec<String>,
    entries: HashMap<String, Entry>,
    /// linear weights converted while streaming, taken out by [`WeightStore::get_packed`]
    converted: std::sync::Mutex<HashMap<String, crate::quant::QWeight>>,
    /// shape and stored dtype of each converted weight (kept after it is taken)
    converted_meta: HashMap<String, (Vec<usize>, Dtype)>,
    /// `__metadata__` of streamed shards
    stream_metadata: Vec<HashMap<String, String>>,
}

/// Parse a safetensors header and return (name → entry) with byte ranges into `bytes`.
fn index_shard(bytes: &[u8], shard: usize, file: &str) -> Result<Vec<(String, Entry)>> {
    let bad = |msg: String| T5Error::BadWeights { file: Some(file.to_string()), msg };
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let (header_len, _) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let data_start = 8 + header_len;
    let base = bytes.as_ptr() as usize;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let start = data.as_ptr() as usize - base;
        debug_assert!(start >= data_start);
        out.push((name, Entry { shard, dtype: view.dtype(), shape: view.shape().to_vec(), start, end: start + data.len(), ggml: None }));
    }
    Ok(out)
}

impl WeightStore {
    /// A store over the given shard files (name for error messages, bytes).
    pub fn from_shards(files: Vec<(String, Vec<u8>)>) -> Result<Self> {
        if files.is_empty() {
            return Err(T5Error::BadWeights { file: None, msg: "no weight files given".into() });
        }
        let mut store = WeightStore::new();
        for (file, bytes) in files {
            store.add_shard(&file, bytes)?;
        }
        Ok(store)
    }

    pub fn new() -> Self {
        WeightStore {
            shards: Vec::new(),
            names: Vec::new(),
            entries: HashMap::new(),
            converted: Default::default(),
            converted_meta: HashMap::new(),
            stream_metadata: Vec::new(),
        }
    }

    /// Add one safetensors file (a shard of the checkpoint).
    pub fn add_shard(&mut self, file: &str, bytes: Vec<u8>) -> Result<()> {
        let shard = self.shards.len();
        for (name, entry) in index_shard(&bytes, shard, file)? {
            if self.contains(&name) {
                return Err(T5Error::BadWeights { file: Some(file.to_string()), msg: format!("tensor {name:?} appears in two shards") });
            }
            self.names.push(name.clone());
            self.entries.insert(name, entry);
        }
        self.shards.push(bytes);
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name) || self.converted_meta.contains_key(name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        match self.entries.get(name) {
            Some(e) => Some(e.shape.as_slice()),
            None => self.converted_meta.get(name).map(|(s, _)| s.as_slice()),
        }
    }

    /// The tensor `name` as f32, checked against `expected` shape.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor> {
        let Some(e) = self.entries.get(name) else {
            // a weight converted while streaming: its dequantized values (while it is still here)
            if let Some((shape, _)) = self.converted_meta.get(name) {
                if shape != expected {
                    return Err(T5Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), found: shape.clone() });
                }
                let conv = self.converted.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(q) = conv.get(name) {
                    return Ok(q.to_tensor());
                }
                return Err(T5Error::BadWeights { file: None, msg: format!("tensor {name:?} was already handed to the model") });
            }
            return Err(T5Error::MissingTensor(name.to_string()));
        };
        if e.shape != expected {
            return Err(T5Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), found: e.shape.clone() });
        }
        let raw = &self.shards[e.shard][e.start..e.end];
        if let Some(ty) = e.ggml {
            let (n, k) = (e.shape[..e.shape.len() - 1].iter().product(), e.shape[e.shape.len() - 1]);
            return Ok(Tensor::new(expected.to_vec(), crate::gguf::to_qweight(ty, n, k, raw).to_tensor().data));
        }
        let data = decode_f32(name, e.dtype, raw)?;
        Ok(Tensor::new(expected.to_vec(), data))
    }

    /// Whether `name` is a weight converted to its storage form while streaming.
    pub fn is_converted(&self, name: &str) -> bool {
        self.converted_meta.contains_key(name)
    }

    /// Bytes held: raw tensor / file bytes plus the weights converted while streaming.
    pub fn resident_bytes(&self) -> u64 {
        let conv = self.converted.lock().unwrap_or_else(|p| p.into_inner());
        self.shards.iter().map(|s| s.len() as u64).sum::<u64>() + conv.values().map(|q| q.bytes() as u64).sum::<u64>()
    }

    /// Whether the checkpoint has the weight `name`, plain or pre-quantized (`<name>.qweight`).
    pub fn has_weight(&self, name: &str) -> bool {
        self.contains(name) || self.contains(&format!("{name}{}", crate::quant::QWEIGHT_SUFFIX))
    }

    /// The `[n, k]` weight `name` in its packed form when the checkpoint stores it quantized
    /// (`<name>.qweight` + `.scales` (+ `.zeros`), see [`crate::quant`]); `None` when it is stored plainly.
    pub fn get_packed(&self, name: &str, expected: &[usize]) -> Result<Option<crate::quant::QWeight>> {
        use crate::quant::{QWeight, QWEIGHT_SUFFIX, SCALES_SUFFIX, ZEROS_SUFFIX};
        if let Some((shape, _)) = self.converted_meta.get(name) {
            if shape != expected {
                return Err(T5Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), found: shape.clone() });
            }
            // taken, not copied: the converted weight moves into the model
            let mut conv = self.converted.lock().unwrap_or_else(|p| p.into_inner());
            return match conv.remove(name) {
                Some(q) => Ok(Some(q)),
                None => Err(T5Error::BadWeights { file: None, msg: format!("tensor {name:?} was already handed to the model") }),
            };
        }
        if let Some(e) = self.entries.get(name) {
            // quantized GGUF blocks, converted without loss into the fused-kernel forms
            if let (Some(ty), [n, k]) = (e.ggml, e.shape.as_slice()) {
                if e.shape != expected {
                    return Err(T5Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), found: e.shape.clone() });
                }
                return Ok(Some(crate::gguf::to_qweight(ty, *n, *k, &self.shards[e.shard][e.start..e.end])));
            }
        }
        let qname = format!("{name}{QWEIGHT_SUFFIX}");
        if self.contains(name) || !self.contains(&qname) {
            return Ok(None);
        }
        let (n, k) = (expected[0], expected[1]);
        let bad = |msg: String| T5Error::BadWeights { file: None, msg: format!("{name}: {msg}") };
        let raw = |t: &str| -> Result<(&Entry, &[u8])> {
            let e = self.entries.get(t).ok_or_else(|| T5Error::MissingTensor(t.to_string()))?;
            Ok((e, &self.shards[e.shard][e.start..e.end]))
        };
        let f32s = |t: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let (e, b) = raw(t)?;
            if e.dtype != Dtype::F32 {
                return Err(T5Error::UnsupportedDtype { name: t.to_string(), dtype: format!("{:?}", e.dtype) });
            }
            if e.shape != shape {
                return Err(T5Error::ShapeMismatch { name: t.to_string(), expected: shape.to_vec(), found: e.shape.clone() });
            }
            Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let (e, bytes) = raw(&qname)?;
        match e.dtype {
            Dtype::U8 => {
                if k % 64 != 0 || e.shape != [n, k / 2] {
                    return Err(T5Error::ShapeMismatch { name: qname, expected: vec![n, k / 2], found: e.shape.clone() });
                }
                let sname = format!("{name}{SCALES_SUFFIX}");
                let groups = self.shape(&sname).and_then(|s| s.get(1).copied()).ok_or_else(|| bad("q4 scales missing or not 2-D".into()))?;
                if groups == 0 || k % groups != 0 || (k / groups) % 64 != 0 {
                    return Err(bad(format!("{groups} groups per row do not split {k} inputs into multiples of 64")));
                }
                let scales = f32s(&sname, &[n, groups])?;
                let zeros = f32s(&format!("{name}{ZEROS_SUFFIX}"), &[n, groups])?;
                Ok(Some(QWeight::Q4 { n, k, group: k / groups, packed: bytes.to_vec(), scales, zeros }))
            }
            Dtype::I8 => {
                if e.shape != [n, k] {
                    return Err(T5Error::ShapeMismatch { name: qname, expected: vec![n, k], found: e.shape.clone() });
                }
                let scales = f32s(&format!("{name}{SCALES_SUFFIX}"), &[n])?;
                Ok(Some(QWeight::Q8 { n, k, codes: bytes.iter().map(|&b| b as i8).collect(), scales }))
            }
            other => Err(T5Error::UnsupportedDtype { name: qname, dtype: format!("{other:?}") }),
        }
    }

    /// The safetensors header metadata of the first shard that has `key`.
    pub fn metadata(&self, key: &str) -> Option<String> {
        self.shards
            .iter()
            .find_map(|b| {
                let (_, m) = SafeTensors::read_metadata(b).ok()?;
                m.metadata().as_ref()?.get(key).cloned()
            })
            .or_else(|| self.stream_metadata.iter().find_map(|m| m.get(key).cloned()))
    }

    /// Free the raw bytes once every tensor has been converted.
    pub fn into_nothing(self) {}
}

impl Default for WeightStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The shard file names listed in a `model.safetensors.index.json`, in first-use order.
pub fn shard_files_from_index(index_json: &str) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(index_json)
        .map_err(|e| T5Error::BadWeights { file: Some("model.safetensors.index.json".into()), msg: e.to_string() })?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| T5Error::BadWeights {
        file: Some("model.safetensors.index.json".into()),
        msg: "no \"weight_map\" object".into(),
    })?;
    let mut files: Vec<String> = Vec::new();
    for f in map.values() {
        let f = f.as_str().ok_or_else(|| T5Error::BadWeights {
            file: Some("model.safetensors.index.json".into()),
            msg: "weight_map values must be file names".into(),
        })?;
        if !files.iter().any(|x| x == f) {
            files.push(f.to_string());
        }
    }
    files.sort();
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// PyTorch checkpoints and conversion to safetensors

impl WeightStore {
    /// Add a PyTorch checkpoint file (`pytorch_model.bin` or one shard of it): torch.save's zip
    /// format or the legacy format, read by the restricted unpickler of [`crate::pickle`] (no code
    /// in the file runs; anything but tensors and state dicts is a `BadWeights` error). Contiguous
    /// tensors stay in the file's bytes; strided views are copied out.
    pub fn add_pytorch(&mut self, file: &str, bytes: Vec<u8>) -> Result<()> {
        let tensors = crate::pickle::read_torch_checkpoint(&bytes, file)?;
        if let Some(t) = tensors.iter().find(|t| self.contains(&t.name)) {
            return Err(T5Error::BadWeights { file: Some(file.to_string()), msg: format!("tensor {:?} appears in two shards", t.name) });
        }
        let file_shard = self.shards.len();
        self.shards.push(bytes);
        for t in tensors {
            let (shard, start, end) = match t.data {
                crate::pickle::TensorBytes::File(r) => (file_shard, r.start, r.end),
                crate::pickle::TensorBytes::Owned(v) => {
                    let n = v.len();
                    self.shards.push(v);
                    (self.shards.len() - 1, 0, n)
                }
            };
            self.names.push(t.name.clone());
            self.entries.insert(t.name, Entry { shard, dtype: t.dtype, shape: t.shape, start, end, ggml: None });
        }
        Ok(())
    }

    /// Add a weights file of either kind, told apart by its first bytes: safetensors (an 8-byte
    /// header length that fits the file, then `{`), else a PyTorch checkpoint (zip archive or
    /// pickle stream); anything else gets the safetensors parser's error.
    pub fn add_file(&mut self, file: &str, bytes: Vec<u8>) -> Result<()> {
        let safetensors_like = bytes.len() > 8 && {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0xff; 8]));
            n.checked_add(8).is_some_and(|end| end <= bytes.len() as u64) && bytes[8] == b'{'
        };
        if !safetensors_like && crate::pickle::looks_like_torch(&bytes) {
            self.add_pytorch(file, bytes)
        } else {
            self.add_shard(file, bytes)
        }
    }

    /// Add the tensors of a GGUF file (see [`crate::gguf::load`]): `entries` name each tensor (by
    /// transformers' name), its shape (outermost first), GGUF type and byte range in `bytes`.
    pub fn add_gguf(&mut self, file: &str, bytes: Vec<u8>, entries: crate::gguf::Entries) -> Result<()> {
        use crate::gguf::GgmlType;
        let shard = self.shards.len();
        for (name, shape, ty, start, end) in entries {
            if self.entries.contains_key(&name) {
                return Err(T5Error::BadWeights { file: Some(file.to_string()), msg: format!("tensor {name:?} appears twice") });
            }
            let (dtype, ggml) = match ty {
                GgmlType::F32 => (Dtype::F32, None),
                GgmlType::F16 => (Dtype::F16, None),
                GgmlType::BF16 => (Dtype::BF16, None),
                q => (Dtype::U8, Some(q)),
            };
            self.names.push(name.clone());
            self.entries.insert(name, Entry { shard, dtype, shape, start, end, ggml });
        }
        self.shards.push(bytes);
        Ok(())
    }

    /// The stored dtype of `name` (`F32`, `F16`, `BF16`, ...).
    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.entries.get(name).map(|e| e.dtype)
    }

    /// The whole checkpoint as one safetensors file, every tensor in its stored dtype, with the
    /// `{"format": "pt"}` metadata transformers writes. Names that alias the bytes of an earlier
    /// tensor (tied embeddings in a PyTorch state dict: `encoder.embed_tokens.weight`,
    /// `decoder.embed_tokens.weight`, `lm_head.weight` sharing `shared.weight`) are written once,
    /// under the first name, as transformers' save_pretrained does; `lm_head.weight` is kept
    /// when `keep_lm_head` (a config with untied embeddings needs it in the file).
    pub fn to_safetensors(&self, keep_lm_head: bool) -> Result<Vec<u8>> {
        use safetensors::tensor::TensorView;
        let mut seen: HashMap<(usize, usize, usize), &str> = HashMap::new();
        let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
        for name in &self.names {
            let Some(e) = self.entries.get(name) else {
                return Err(T5Error::BadWeights { file: None, msg: format!("tensor {name:?} was converted while streaming; stream with dtype fp32 to write the checkpoint back") });
            };
            let key = (e.shard, e.start, e.end);
            if let Some(first) = seen.get(&key) {
                let same = &self.entries[*first];
                if same.shape == e.shape && same.dtype == e.dtype && e.end > e.start && !(keep_lm_head && name == "lm_head.weight") {
                    continue;
                }
            } else {
                seen.insert(key, name);
            }
            let view = TensorView::new(e.dtype, e.shape.clone(), &self.shards[e.shard][e.start..e.end])
                .map_err(|err| T5Error::BadWeights { file: None, msg: format!("tensor {name:?}: {err}") })?;
            views.push((name.clone(), view));
        }
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::tensor::serialize(views, Some(meta)).map_err(|e| T5Error::BadWeights { file: None, msg: format!("writing safetensors: {e}") })
    }
}

/// f32 values of a tensor's little-endian bytes in a float dtype.
fn decode_f32(name: &str, dtype: Dtype, raw: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect(),
        other => return Err(T5Error::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") }),
    })
}

// ---------------------------------------------------------------------------------------------
// Streaming safetensors files tensor by tensor

use crate::quant::{QWeight, WeightDtype};

/// Whether the model loader reads `name` as a linear weight (or the embedding table) converted to
/// the requested storage form: the names `T5::load_with_dtype` passes to its `weight()`.
pub fn is_linear_weight(name: &str) -> bool {
    let n = name.strip_prefix("transformer.").unwrap_or(name);
    if matches!(n, "shared.weight" | "encoder.embed_tokens.weight" | "lm_head.weight") {
        return name != "transformer.lm_head.weight";
    }
    let in_block = (n.starts_with("encoder.block.") || n.starts_with("decoder.block."))
        && [".SelfAttention.", ".EncDecAttention.", ".DenseReluDense."].iter().any(|m| n.contains(m));
    in_block
        && [".q.weight", ".k.weight", ".v.weight", ".o.weight", ".wi.weight", ".wi_0.weight", ".wi_1.weight", ".wo.weight"]
            .iter()
            .any(|suf| n.ends_with(suf))
}

/// Bytes of an `[n, k]` weight in the storage form `dtype` gives it (see [`WeightDtype::storage_for`]).
pub fn stored_weight_bytes(name: &str, n: u64, k: u64, dtype: WeightDtype) -> u64 {
    match dtype.storage_for(name, k as usize) {
        WeightDtype::F32 => n * k * 4,
        WeightDtype::F16 | WeightDtype::BF16 => n * k * 2,
        WeightDtype::Q8 => n * k + n * 4,
        WeightDtype::Q4 => n * k / 2 + 2 * 4 * (n * k / crate::quant::Q4_GROUP as u64),
    }
}

/// The memory a process may use for one model, by default: one wasm32 linear memory (4 GiB) on
/// 32-bit targets, unlimited natively.
pub fn default_memory_limit() -> Option<u64> {
    if usize::BITS <= 32 {
        Some(1u64 << 32)
    } else {
        None
    }
}

/// Memory kept aside in a limit check for the engine's code, stack, tokenizer and activations.
pub const MEMORY_RESERVE: u64 = 64 << 20;

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Resident bytes of a T5 with this config in storage form `dtype` (the linear weights and the
/// embedding table as `dtype` stores them, everything else f32), from the config alone.
pub fn estimate_model_bytes(cfg: &crate::config::T5Config, has_decoder: bool, lm_head: bool, dtype: WeightDtype) -> u64 {
    let (d, inner, ff, vocab) = (cfg.d_model as u64, cfg.inner_dim() as u64, cfg.d_ff as u64, cfg.vocab_size as u64);
    let gated = cfg.feed_forward().map(|f| f.gated).unwrap_or(false);
    let w = |name: &str, n: u64, k: u64| stored_weight_bytes(name, n, k, dtype);
    let attention = w("x.q.weight", inner, d) * 3 + w("x.o.weight", d, inner);
    let ffn = w("x.wi.weight", ff, d) * if gated { 2 } else { 1 } + w("x.wo.weight", d, ff);
    let bias = (cfg.relative_attention_num_buckets * cfg.num_heads) as u64 * 4;
    let mut total = w("shared.weight", vocab, d) + cfg.num_layers as u64 * (attention + ffn + 2 * d * 4) + d * 4 + bias;
    if has_decoder {
        total += cfg.decoder_layers() as u64 * (2 * attention + ffn + 3 * d * 4) + d * 4 + bias;
        if lm_head {
            total += w("lm_head.weight", vocab, d);
        }
    }
    total
}

/// [`estimate_model_bytes`] against `limit`: a [`T5Error::ModelTooLarge`] naming the storage forms
/// that would fit when this one does not.
pub fn check_model_fits(cfg: &crate::config::T5Config, has_decoder: bool, lm_head: bool, dtype: WeightDtype, limit: Option<u64>) -> Result<u64> {
    let need = estimate_model_bytes(cfg, has_decoder, lm_head, dtype);
    let Some(limit) = limit else { return Ok(need) };
    if need + MEMORY_RESERVE <= limit {
        return Ok(need);
    }
    let fits: Vec<String> = [WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4]
        .into_iter()
        .filter(|&d| estimate_model_bytes(cfg, has_decoder, lm_head, d) + MEMORY_RESERVE <= limit)
        .map(|d| format!("{:?} ({})", d.name(), gib(estimate_model_bytes(cfg, has_decoder, lm_head, d))))
        .collect();
    let hint = if fits.is_empty() { "no storage form fits".to_string() } else { format!("load it with dtype {}", fits.join(" or ")) };
    Err(T5Error::ModelTooLarge(format!(
        "its weights take {} as {}, more than the {} one WebAssembly memory can hold ({} kept for the engine); {hint}",
        gib(need),
        dtype.name(),
        gib(limit),
        gib(MEMORY_RESERVE)
    )))
}

/// What happens to one tensor of a streamed file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    /// kept as its raw bytes (norms, position bias, head weights, pre-quantized parts)
    Keep,
    /// converted to the requested storage form once complete
    Convert,
    /// never read by the model (`decoder.embed_tokens.weight` and, next to `shared.weight`,
    /// `encoder.embed_tokens.weight`: copies of the shared table)
    Skip,
}

/// A linear weight converted row by row as its bytes arrive (every storage form but fp16, whose
/// "any value beyond the f16 range keeps the whole tensor f32" rule needs the whole tensor): the
/// same values as [`QWeight::from_tensor`] on the whole tensor, since every form is row-local.
enum RowAcc {
    F32(Vec<f32>),
    BF16(Vec<u16>),
    Q8 { codes: Vec<i8>, scales: Vec<f32> },
    Q4 { packed: Vec<u8>, scales: Vec<f32>, zeros: Vec<f32> },
}

impl RowAcc {
    fn new(form: WeightDtype, n: usize, k: usize) -> Option<RowAcc> {
        use crate::quant::Q4_GROUP;
        Some(match form {
            WeightDtype::F32 => RowAcc::F32(Vec::with_capacity(n * k)),
            WeightDtype::BF16 => RowAcc::BF16(Vec::with_capacity(n * k)),
            WeightDtype::Q8 => RowAcc::Q8 { codes: Vec::with_capacity(n * k), scales: Vec::with_capacity(n) },
            WeightDtype::Q4 => RowAcc::Q4 { packed: Vec::with_capacity(n * k / 2), scales: Vec::with_capacity(n * k / Q4_GROUP), zeros: Vec::with_capacity(n * k / Q4_GROUP) },
            WeightDtype::F16 => return None,
        })
    }

    fn push_row(&mut self, row: &[f32]) {
        use crate::quant::{pack_q4, quantize_q4, quantize_q8, Q4_GROUP};
        let k = row.len();
        match self {
            RowAcc::F32(d) => d.extend_from_slice(row),
            RowAcc::BF16(d) => d.extend(row.iter().map(|&v| half::bf16::from_f32(v).to_bits())),
            RowAcc::Q8 { codes, scales } => {
                let (c, s) = quantize_q8(row, 1, k);
                codes.extend_from_slice(&c);
                scales.extend_from_slice(&s);
            }
            RowAcc::Q4 { packed, scales, zeros } => {
                let (c, s, z) = quantize_q4(row, 1, k, Q4_GROUP);
                packed.extend_from_slice(&pack_q4(&c, 1, k));
                scales.extend_from_slice(&s);
                zeros.extend_from_slice(&z);
            }
        }
    }

    fn finish(self, n: usize, k: usize) -> QWeight {
        match self {
            RowAcc::F32(data) => QWeight::F32 { n, k, data },
            RowAcc::BF16(data) => QWeight::BF16 { n, k, data },
            RowAcc::Q8 { codes, scales } => QWeight::Q8 { n, k, codes, scales },
            RowAcc::Q4 { packed, scales, zeros } => QWeight::Q4 { n, k, group: crate::quant::Q4_GROUP, packed, scales, zeros },
        }
    }
}

struct Planned {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    start: u64,
    end: u64,
    action: Action,
}

/// One safetensors file pushed piece by piece into a [`WeightStore`]: the header is parsed as soon
/// as it has arrived (and the memory the file will take is checked against the limit before any
/// tensor data is read), then each tensor's bytes are gathered into a buffer of its own size and,
/// when complete, converted (linear weights: to the requested storage form) or kept. At most one
/// tensor's raw bytes (plus its f32 form while converting) are held beyond what the store keeps.
pub struct ShardStream {
    file: String,
    dtype: WeightDtype,
    limit: Option<u64>,
    /// the file's size when the caller knows it (checked against the header)
    size: Option<u64>,
    received: u64,
    head: Vec<u8>,
    header_len: Option<u64>,
    plan: Vec<Planned>,
    metadata: Option<HashMap<String, String>>,
    planned: bool,
    /// index of the tensor being gathered
    cur: usize,
    /// the tensor's bytes, or (row by row conversion) the current row's
    buf: Vec<u8>,
    /// row by row conversion of the current tensor, and its row length in bytes
    acc: Option<(RowAcc, usize)>,
    /// bytes of data (after the header) consumed so far
    data_pos: u64,
    data_len: u64,
    /// the whole model's config, checked against the limit once the header shows a plain
    /// (not pre-quantized) checkpoint: set for a checkpoint's first file
    config_check: Option<(crate::config::T5Config, bool)>,
}

/// Largest header accepted (as the safetensors crate: 100 MB).
const MAX_HEADER: u64 = 100_000_000;

impl ShardStream {
    /// Start streaming the file `file` (its name is used in errors); `size`: its length when known;
    /// `dtype`: the storage form of the linear weights; `limit`: the memory the whole store may take.
    pub fn new(file: &str, size: Option<u64>, dtype: WeightDtype, limit: Option<u64>) -> Self {
        ShardStream {
            file: file.to_string(),
            dtype,
            limit,
            size,
            received: 0,
            head: Vec::new(),
            header_len: None,
            plan: Vec::new(),
            metadata: None,
            planned: false,
            cur: 0,
            buf: Vec::new(),
            acc: None,
            data_pos: 0,
            data_len: 0,
            config_check: None,
        }
    }

    /// Also check the whole model's size from `config` (in the requested dtype; with its decoder and,
    /// when untied, its LM head if `has_decoder`) once the header has arrived, unless the file is
    /// pre-quantized (its tensors then keep their stored forms, which the header check counts exactly).
    /// For the first file of a sharded checkpoint this speaks before any shard's data is read.
    pub fn with_config_check(mut self, config: &crate::config::T5Config, has_decoder: bool) -> Self {
        self.config_check = Some((config.clone(), has_decoder));
        self
    }

    fn bad(&self, msg: impl Into<String>) -> T5Error {
        T5Error::BadWeights { file: Some(self.file.clone()), msg: msg.into() }
    }

    /// Whether the header has been read (and the memory check passed).
    pub fn header_done(&self) -> bool {
        self.planned
    }

    /// The next piece of the file.
    pub fn push(&mut self, store: &mut WeightStore, mut chunk: &[u8]) -> Result<()> {
        self.received += chunk.len() as u64;
        if let Some(size) = self.size {
            if self.received > size {
                return Err(self.bad(format!("more than the announced {size} bytes")));
            }
        }
        while !self.planned {
            // the 8-byte header length, then the JSON header
            let want = match self.header_len {
                None => 8,
                Some(n) => 8 + n,
            };
            let take = ((want - self.head.len() as u64) as usize).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if (self.head.len() as u64) < want {
                return Ok(());
            }
            if self.header_len.is_none() {
                let n = u64::from_le_bytes(self.head[..8].try_into().unwrap_or([0; 8]));
                if n == 0 || n > MAX_HEADER {
                    return Err(self.bad(format!("header length {n} is not a safetensors header")));
                }
                if let Some(size) = self.size {
                    if 8 + n > size {
                        return Err(self.bad(format!("header of {n} bytes is longer than the file ({size} bytes)")));
                    }
                }
                self.header_len = Some(n);
                continue;
            }
            self.plan(store)?;
        }
        self.push_data(store, chunk)
    }

    /// Parse the header, decide each tensor's fate, check the memory it will take.
    fn plan(&mut self, store: &mut WeightStore) -> Result<()> {
        let text = std::str::from_utf8(&self.head[8..]).map_err(|e| self.bad(format!("header is not UTF-8: {e}")))?;
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| self.bad(format!("header is not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| self.bad("header is not a JSON object"))?;
        let mut plan = Vec::with_capacity(obj.len());
        for (name, info) in obj {
            if name == "__metadata__" {
                let m: HashMap<String, String> = serde_json::from_value(info.clone()).map_err(|e| self.bad(format!("__metadata__: {e}")))?;
                self.metadata = Some(m);
                continue;
            }
            let dtype: Dtype = info
                .get("dtype")
                .cloned()
                .and_then(|d| serde_json::from_value(d).ok())
                .ok_or_else(|| self.bad(format!("tensor {name:?}: missing or unknown dtype")))?;
            let shape: Vec<usize> = info
                .get("shape")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .ok_or_else(|| self.bad(format!("tensor {name:?}: missing or bad shape")))?;
            let offs: (u64, u64) = info
                .get("data_offsets")
                .cloned()
                .and_then(|o| serde_json::from_value(o).ok())
                .ok_or_else(|| self.bad(format!("tensor {name:?}: missing or bad data_offsets")))?;
            let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).ok_or_else(|| self.bad(format!("tensor {name:?}: shape overflows")))?;
            let bits = numel.checked_mul(dtype.bitsize() as u64).ok_or_else(|| self.bad(format!("tensor {name:?}: shape overflows")))?;
            if bits % 8 != 0 || offs.1 < offs.0 || offs.1 - offs.0 != bits / 8 {
                return Err(self.bad(format!("tensor {name:?}: data_offsets {offs:?} do not match its dtype and shape")));
            }
            plan.push(Planned { name: name.clone(), dtype, shape, start: offs.0, end: offs.1, action: Action::Keep });
        }
        plan.sort_by_key(|p| (p.start, p.end));
        let mut at = 0u64;
        for p in &plan {
            if p.start != at {
                return Err(self.bad(format!("tensor {:?}: data_offsets leave a gap or overlap", p.name)));
            }
            at = p.end;
        }
        self.data_len = at;
        if let Some(size) = self.size {
            let header = self.head.len() as u64;
            if header + at != size {
                return Err(self.bad(format!("header describes {} bytes of data but the file has {}", at, size.saturating_sub(header))));
            }
        }
        let prequantized = plan.iter().any(|p| p.name.ends_with(crate::quant::QWEIGHT_SUFFIX))
            || self.metadata.as_ref().is_some_and(|m| m.contains_key(crate::quant::METADATA_KEY));
        if let (Some((cfg, dec)), false) = (&self.config_check, prequantized) {
            check_model_fits(cfg, *dec, *dec && !cfg.tie_word_embeddings, self.dtype, self.limit)?;
        }
        let names: std::collections::HashSet<String> = plan.iter().map(|p| p.name.clone()).collect();
        let mut needed = store.resident_bytes();
        let mut transient = 0u64;
        let float = |d: Dtype| matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64);
        for p in &mut plan {
            if store.contains(&p.name) {
                return Err(self.bad(format!("tensor {:?} appears in two shards", p.name)));
            }
            let prefix = if p.name.starts_with("transformer.") { "transformer." } else { "" };
            let base = &p.name[prefix.len()..];
            let shared_here = names.contains(&format!("{prefix}shared.weight")) || store.contains(&format!("{prefix}shared.weight"));
            p.action = if base == "decoder.embed_tokens.weight" || (base == "encoder.embed_tokens.weight" && shared_here) {
                Action::Skip
            } else if is_linear_weight(&p.name) && p.shape.len() == 2 && float(p.dtype) {
                Action::Convert
            } else {
                Action::Keep
            };
            let raw = p.end - p.start;
            match p.action {
                Action::Skip => {}
                Action::Keep => needed += raw,
                Action::Convert => {
                    let (n, k) = (p.shape[0] as u64, p.shape[1] as u64);
                    let stored = stored_weight_bytes(&p.name, n, k, self.dtype);
                    needed += stored;
                    if self.dtype.storage_for(&p.name, k as usize) == WeightDtype::F16 {
                        // fp16 converts whole tensors: the raw bytes and their f32 form
                        transient = transient.max(raw + n * k * 4);
                    } else {
                        // one row at a time (raw + f32 + codes)
                        transient = transient.max(k * 16);
                    }
                }
            }
            if p.action == Action::Keep {
                transient = transient.max(raw);
            }
        }
        if let Some(limit) = self.limit {
            let total = needed + transient + MEMORY_RESERVE;
            if total > limit {
                return Err(T5Error::ModelTooLarge(format!(
                    "{}: its tensors take {} as {} (with what is already loaded), plus {} while one converts, more than the {} one WebAssembly memory can hold ({} kept for the engine); {}",
                    self.file,
                    gib(needed),
                    self.dtype.name(),
                    gib(transient),
                    gib(limit),
                    gib(MEMORY_RESERVE),
                    if self.dtype == WeightDtype::Q4 { "no storage form fits".to_string() } else { "load it with a smaller dtype (\"q8\" or \"q4\")".to_string() }
                )));
            }
        }
        self.plan = plan;
        self.planned = true;
        self.head = Vec::new();
        if let Some(m) = self.metadata.take() {
            store.stream_metadata.push(m);
        }
        self.start_tensor(store)
    }

    /// Prepare the buffer of the tensor at `cur`, finishing empty tensors at once.
    fn start_tensor(&mut self, store: &mut WeightStore) -> Result<()> {
        while self.cur < self.plan.len() {
            let p = &self.plan[self.cur];
            let len = p.end - p.start;
            if len > 0 {
                let len = usize::try_from(len).map_err(|_| self.bad(format!("tensor {:?} is larger than this platform can address", p.name)))?;
                let too_big = |what: usize| T5Error::ModelTooLarge(format!("{}: no memory left for tensor {:?} ({what} bytes)", self.file, p.name));
                self.buf = Vec::new();
                self.acc = None;
                if p.action == Action::Convert {
                    let (n, k) = (p.shape[0], p.shape[1]);
                    if let Some(acc) = RowAcc::new(self.dtype.storage_for(&p.name, k), n, k) {
                        self.acc = Some((acc, len / n));
                        self.buf.try_reserve_exact(len / n).map_err(|_| too_big(len / n))?;
                        return Ok(());
                    }
                }
                if p.action != Action::Skip {
                    self.buf.try_reserve_exact(len).map_err(|_| too_big(len))?;
                }
                return Ok(());
            }
            self.finish_tensor(store)?;
        }
        Ok(())
    }

    fn push_data(&mut self, store: &mut WeightStore, mut chunk: &[u8]) -> Result<()> {
        while !chunk.is_empty() {
            if self.cur >= self.plan.len() {
                return Err(self.bad(format!("more bytes than the header's {} bytes of data", self.data_len)));
            }
            let p = &self.plan[self.cur];
            let mut left = (p.end - self.data_pos) as usize;
            if let Some((_, row)) = &self.acc {
                left = left.min(row - self.buf.len());
            }
            let take = left.min(chunk.len());
            if p.action != Action::Skip {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            self.data_pos += take as u64;
            chunk = &chunk[take..];
            if let Some((acc, row)) = &mut self.acc {
                if self.buf.len() == *row {
                    let values = decode_f32(&p.name, p.dtype, &self.buf)?;
                    acc.push_row(&values);
                    self.buf.clear();
                }
            }
            if self.data_pos == p.end {
                self.finish_tensor(store)?;
                self.start_tensor(store)?;
            }
        }
        Ok(())
    }

    /// The tensor at `cur` is complete: convert or keep it.
    fn finish_tensor(&mut self, store: &mut WeightStore) -> Result<()> {
        let p = &self.plan[self.cur];
        let bytes = std::mem::take(&mut self.buf);
        self.cur += 1;
        if p.action == Action::Skip {
            return Ok(());
        }
        if store.contains(&p.name) {
            return Err(self.bad(format!("tensor {:?} appears in two shards", p.name)));
        }
        store.names.push(p.name.clone());
        match p.action {
            Action::Convert => {
                let (n, k) = (p.shape[0], p.shape[1]);
                let q = match self.acc.take() {
                    Some((acc, _)) => acc.finish(n, k),
                    None => {
                        let data = decode_f32(&p.name, p.dtype, &bytes)?;
                        drop(bytes);
                        QWeight::from_tensor(Tensor::new(vec![n, k], data), self.dtype.storage_for(&p.name, k))
                    }
                };
                store.converted_meta.insert(p.name.clone(), (p.shape.clone(), p.dtype));
                store.converted.lock().unwrap_or_else(|e| e.into_inner()).insert(p.name.clone(), q);
            }
            _ => {
                let (shard, end) = (store.shards.len(), bytes.len());
                store.shards.push(bytes);
                store.entries.insert(p.name.clone(), Entry { shard, dtype: p.dtype, shape: p.shape.clone(), start: 0, end, ggml: None });
            }
        }
        Ok(())
    }

    /// The file has ended: every tensor must be complete.
    pub fn finish(self, _store: &mut WeightStore) -> Result<()> {
        if !self.planned {
            return Err(self.bad(format!("truncated: the file ended after {} bytes, inside its header", self.received)));
        }
        if self.cur < self.plan.len() || self.data_pos != self.data_len {
            return Err(self.bad(format!(
                "truncated: the file ended after {} bytes, inside tensor {:?}",
                self.received,
                self.plan.get(self.cur).map(|p| p.name.as_str()).unwrap_or("")
            )));
        }
        if let Some(size) = self.size {
            if self.received != size {
                return Err(self.bad(format!("{} bytes arrived, {size} announced", self.received)));
            }
        }
        Ok(())
    }
}
