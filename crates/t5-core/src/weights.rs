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
pub struct WeightStore {
    shards: Vec<Vec<u8>>,
    names: Vec<String>,
    entries: HashMap<String, Entry>,
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
        let mut store = WeightStore { shards: Vec::new(), names: Vec::new(), entries: HashMap::new() };
        for (file, bytes) in files {
            store.add_shard(&file, bytes)?;
        }
        Ok(store)
    }

    pub fn new() -> Self {
        WeightStore { shards: Vec::new(), names: Vec::new(), entries: HashMap::new() }
    }

    /// Add one safetensors file (a shard of the checkpoint).
    pub fn add_shard(&mut self, file: &str, bytes: Vec<u8>) -> Result<()> {
        let shard = self.shards.len();
        for (name, entry) in index_shard(&bytes, shard, file)? {
            if self.entries.contains_key(&name) {
                return Err(T5Error::BadWeights { file: Some(file.to_string()), msg: format!("tensor {name:?} appears in two shards") });
            }
            self.names.push(name.clone());
            self.entries.insert(name, entry);
        }
        self.shards.push(bytes);
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The tensor `name` as f32, checked against `expected` shape.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor> {
        let e = self.entries.get(name).ok_or_else(|| T5Error::MissingTensor(name.to_string()))?;
        if e.shape != expected {
            return Err(T5Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), found: e.shape.clone() });
        }
        let raw = &self.shards[e.shard][e.start..e.end];
        if let Some(ty) = e.ggml {
            let (n, k) = (e.shape[..e.shape.len() - 1].iter().product(), e.shape[e.shape.len() - 1]);
            return Ok(Tensor::new(expected.to_vec(), crate::gguf::to_qweight(ty, n, k, raw).to_tensor().data));
        }
        let data: Vec<f32> = match e.dtype {
            Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::F64 => raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            other => return Err(T5Error::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") }),
        };
        Ok(Tensor::new(expected.to_vec(), data))
    }

    /// Whether the checkpoint has the weight `name`, plain or pre-quantized (`<name>.qweight`).
    pub fn has_weight(&self, name: &str) -> bool {
        self.contains(name) || self.contains(&format!("{name}{}", crate::quant::QWEIGHT_SUFFIX))
    }

    /// The `[n, k]` weight `name` in its packed form when the checkpoint stores it quantized
    /// (`<name>.qweight` + `.scales` (+ `.zeros`), see [`crate::quant`]); `None` when it is stored plainly.
    pub fn get_packed(&self, name: &str, expected: &[usize]) -> Result<Option<crate::quant::QWeight>> {
        use crate::quant::{QWeight, QWEIGHT_SUFFIX, SCALES_SUFFIX, ZEROS_SUFFIX};
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
        self.shards.iter().find_map(|b| {
            let (_, m) = SafeTensors::read_metadata(b).ok()?;
            m.metadata().as_ref()?.get(key).cloned()
        })
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
        if let Some(t) = tensors.iter().find(|t| self.entries.contains_key(&t.name)) {
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
            let e = &self.entries[name];
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
