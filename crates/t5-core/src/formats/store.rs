//! The [`WeightStore`] every file format fills: the tensors of a checkpoint (one or more files, by
//! transformers' names) held as their file bytes, converted from f32 / f16 / bf16 / f64 to f32 host
//! tensors on demand (or, for linear weights converted while streaming, already in their storage
//! form), with shape checks that name the tensor. The formats that fill it: [`super::safetensors`],
//! [`super::stream`], [`super::pickle`], [`super::gguf`].

use crate::dtype::quant::{QWEIGHT_SUFFIX, SCALES_SUFFIX, ZEROS_SUFFIX};
use crate::dtype::QWeight;
use crate::dtype::ggml::{to_qweight, GgmlType};
use crate::error::{Result, T5Error};
use crate::tensor::Tensor;
use safetensors::tensor::Dtype;
use std::collections::HashMap;

/// Where one tensor's bytes are.
pub(super) struct Entry {
    pub(super) shard: usize,
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<usize>,
    pub(super) start: usize,
    pub(super) end: usize,
    /// a quantized GGUF tensor (`dtype` is then `U8`, the raw blocks)
    pub(super) ggml: Option<GgmlType>,
}

/// The tensors of a GGUF file for [`WeightStore::add_gguf`]: `(name, shape, type, start, end)`.
pub type GgmlEntries = Vec<(String, Vec<usize>, GgmlType, usize, usize)>;

/// The tensors of a checkpoint, possibly spread over several shard files.
///
/// Tensors arrive either as whole files ([`WeightStore::add_shard`], [`WeightStore::add_file`]:
/// the file's bytes are kept until the model is built) or streamed piece by piece
/// ([`super::stream::ShardStream`]: each tensor is kept in its own buffer, and the linear weights the model
/// loader converts are converted to the requested storage form as soon as they are complete, so
/// neither the whole file nor its f32 form is ever held).
pub struct WeightStore {
    pub(super) shards: Vec<Vec<u8>>,
    pub(super) names: Vec<String>,
    pub(super) entries: HashMap<String, Entry>,
    /// linear weights converted while streaming, taken out by [`WeightStore::get_packed`]
    pub(super) converted: std::sync::Mutex<HashMap<String, QWeight>>,
    /// shape and stored dtype of each converted weight (kept after it is taken)
    pub(super) converted_meta: HashMap<String, (Vec<usize>, Dtype)>,
    /// the weights among `converted` that arrived pre-quantized (assembled, not converted:
    /// [`WeightStore::adopt_packed`])
    pub(super) adopted: std::collections::HashSet<String>,
    /// `__metadata__` of streamed shards
    pub(super) stream_metadata: Vec<HashMap<String, String>>,
    /// the memory the store may hold (see [`WeightStore::set_memory_limit`])
    pub(super) limit: Option<u64>,
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
            adopted: Default::default(),
            stream_metadata: Vec::new(),
            limit: None,
        }
    }

    /// The memory the store may hold, files and copies together (`None`: no limit, the default):
    /// a file or copy beyond it is a [`T5Error::ModelTooLarge`] before its tensors are indexed or
    /// copied. Callers pass the same limit to [`super::stream::ShardStream`] and
    /// [`super::budget::check_build_fits`].
    pub fn set_memory_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
    }

    pub fn memory_limit(&self) -> Option<u64> {
        self.limit
    }

    /// The bytes the limit leaves once the store holds `more` bytes beyond what it holds now
    /// (`None`: no limit); a [`T5Error::ModelTooLarge`] naming `file` when there are none.
    pub(super) fn room_after(&self, file: &str, more: u64) -> Result<Option<u64>> {
        let Some(limit) = self.limit else { return Ok(None) };
        let held = self.resident_bytes().saturating_add(more).saturating_add(super::budget::MEMORY_RESERVE);
        limit.checked_sub(held).map(Some).ok_or_else(|| {
            T5Error::ModelTooLarge(format!(
                "{file}: the checkpoint's files take {} with this one, more than the memory limit of {} ({} kept for the engine)",
                super::budget::gib(self.resident_bytes().saturating_add(more)),
                super::budget::gib(limit),
                super::budget::gib(super::budget::MEMORY_RESERVE)
            ))
        })
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
            return Ok(Tensor::new(expected.to_vec(), to_qweight(ty, n, k, raw).to_tensor().data));
        }
        let data = decode_f32(name, e.dtype, raw)?;
        Ok(Tensor::new(expected.to_vec(), data))
    }

    /// Whether `name` is a weight converted to its storage form while streaming.
    pub fn is_converted(&self, name: &str) -> bool {
        self.converted_meta.contains_key(name) && !self.adopted.contains(name)
    }

    /// Bytes held: raw tensor / file bytes plus the weights converted while streaming.
    pub fn resident_bytes(&self) -> u64 {
        let conv = self.converted.lock().unwrap_or_else(|p| p.into_inner());
        self.shards.iter().map(|s| s.len() as u64).sum::<u64>() + conv.values().map(|q| q.bytes() as u64).sum::<u64>()
    }

    /// Whether the checkpoint has the weight `name`, plain or pre-quantized (`<name>.qweight`).
    pub fn has_weight(&self, name: &str) -> bool {
        self.contains(name) || self.contains(&format!("{name}{}", QWEIGHT_SUFFIX))
    }

    /// The `[n, k]` weight `name` in its packed form when the checkpoint stores it quantized
    /// (`<name>.qweight` + `.scales` (+ `.zeros`), see [`crate::dtype::quant`]); `None` when it is stored plainly.
    pub fn get_packed(&self, name: &str, expected: &[usize]) -> Result<Option<QWeight>> {
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
                return Ok(Some(to_qweight(ty, *n, *k, &self.shards[e.shard][e.start..e.end])));
            }
        }
        let qname = format!("{name}{QWEIGHT_SUFFIX}");
        if self.contains(name) || !self.contains(&qname) {
            return Ok(None);
        }
        let (n, k) = (expected[0], expected[1]);
        let form = self.packed_form(name, n, k)?;
        let e = &self.entries[&qname];
        Ok(Some(form.with_codes(n, k, self.shards[e.shard][e.start..e.end].to_vec())))
    }

    /// The checked parts of the pre-quantized `[n, k]` weight `name` but its codes: `<name>.qweight` (u8
    /// `[n, k / 2]`: q4, or i8 `[n, k]`: q8), its f32 `.scales` (q4: `[n, groups]`, q8: `[n]`) and q4's `.zeros`.
    fn packed_form(&self, name: &str, n: usize, k: usize) -> Result<PackedForm> {
        let qname = format!("{name}{QWEIGHT_SUFFIX}");
        let bad = |msg: String| T5Error::BadWeights { file: None, msg: format!("{name}: {msg}") };
        let f32s = |t: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let e = self.entries.get(t).ok_or_else(|| T5Error::MissingTensor(t.to_string()))?;
            if e.dtype != Dtype::F32 {
                return Err(T5Error::UnsupportedDtype { name: t.to_string(), dtype: format!("{:?}", e.dtype) });
            }
            if e.shape != shape {
                return Err(T5Error::ShapeMismatch { name: t.to_string(), expected: shape.to_vec(), found: e.shape.clone() });
            }
            Ok(self.shards[e.shard][e.start..e.end].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let e = self.entries.get(&qname).ok_or_else(|| T5Error::MissingTensor(qname.clone()))?;
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
                Ok(PackedForm::Q4 { group: k / groups, scales, zeros })
            }
            Dtype::I8 => {
                if e.shape != [n, k] {
                    return Err(T5Error::ShapeMismatch { name: qname, expected: vec![n, k], found: e.shape.clone() });
                }
                Ok(PackedForm::Q8 { scales: f32s(&format!("{name}{SCALES_SUFFIX}"), &[n])? })
            }
            other => Err(T5Error::UnsupportedDtype { name: qname, dtype: format!("{other:?}") }),
        }
    }

    /// Called as each streamed tensor `part` is complete: once a pre-quantized weight's parts are all here
    /// (`<name>.qweight`, `.scales`, and for q4 `.zeros`), the weight is assembled as [`WeightStore::get_packed`]
    /// assembles it, its codes' buffer moved in rather than copied (so the codes are held once, not twice, until
    /// the model is built: t5-v1_1-xl's q4 file is 1.6 GB), the parts' buffers freed, and the weight taken by
    /// [`WeightStore::get_packed`] like a converted one. Parts that do not fit together are left as they are,
    /// for `get_packed` to name when the model asks for the weight.
    pub(super) fn adopt_packed(&mut self, part: &str) {
        let Some(name) = [QWEIGHT_SUFFIX, SCALES_SUFFIX, ZEROS_SUFFIX].iter().find_map(|suf| part.strip_suffix(suf)) else { return };
        let parts = [QWEIGHT_SUFFIX, SCALES_SUFFIX, ZEROS_SUFFIX].map(|suf| format!("{name}{suf}"));
        let Some(e) = self.entries.get(&parts[0]) else { return };
        let (n, k) = match (e.dtype, e.shape.as_slice()) {
            // (an empty tensor's dimensions are bounded by nothing: hence checked)
            (Dtype::U8, &[n, half]) if self.entries.contains_key(&parts[2]) => match half.checked_mul(2) {
                Some(k) => (n, k),
                None => return,
            },
            (Dtype::I8, &[n, k]) => (n, k),
            _ => return,
        };
        if e.start != 0 || e.end != self.shards[e.shard].len() || !self.entries.contains_key(&parts[1]) || self.converted_meta.contains_key(name) {
            return; // not a buffer of its own (a whole file), or a part still to come
        }
        let Ok(form) = self.packed_form(name, n, k) else { return };
        let mut freed = parts.iter().filter_map(|p| self.entries.remove(p)).map(|e| std::mem::take(&mut self.shards[e.shard]));
        let codes = freed.next().unwrap_or_default();
        freed.for_each(drop);
        let dtype = if matches!(form, PackedForm::Q4 { .. }) { Dtype::U8 } else { Dtype::I8 };
        self.converted_meta.insert(name.to_string(), (vec![n, k], dtype));
        self.adopted.insert(name.to_string());
        self.converted.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), form.with_codes(n, k, codes));
    }

    /// Free the raw bytes once every tensor has been converted.
    pub fn into_nothing(self) {}
}

impl Default for WeightStore {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// PyTorch checkpoints and conversion to safetensors

impl WeightStore {
    /// Add a PyTorch checkpoint file (`pytorch_model.bin` or one shard of it): torch.save's zip
    /// format or the legacy format, read by the restricted unpickler of [`super::pickle`] (no code
    /// in the file runs; anything but tensors and state dicts is a `BadWeights` error). Contiguous
    /// tensors stay in the file's bytes; strided views are copied out.
    pub fn add_pytorch(&mut self, file: &str, bytes: Vec<u8>) -> Result<()> {
        let room = self.room_after(file, bytes.len() as u64)?;
        let tensors = super::pickle::read_torch_checkpoint_within(&bytes, file, room)?;
        if let Some(t) = tensors.iter().find(|t| self.contains(&t.name)) {
            return Err(T5Error::BadWeights { file: Some(file.to_string()), msg: format!("tensor {:?} appears in two shards", t.name) });
        }
        let file_shard = self.shards.len();
        self.shards.push(bytes);
        for t in tensors {
            let (shard, start, end) = match t.data {
                super::pickle::TensorBytes::File(r) => (file_shard, r.start, r.end),
                super::pickle::TensorBytes::Owned(v) => {
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
        if !safetensors_like && super::pickle::looks_like_torch(&bytes) {
            self.add_pytorch(file, bytes)
        } else {
            self.add_shard(file, bytes)
        }
    }

    /// Add the tensors of a GGUF file (see [`super::gguf::load`]): `entries` name each tensor (by
    /// transformers' name), its shape (outermost first), GGUF type and byte range in `bytes`.
    pub fn add_gguf(&mut self, file: &str, bytes: Vec<u8>, entries: GgmlEntries) -> Result<()> {
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

    /// What building the model takes for the weight `name` of `shape` (`linear`: stored in the requested
    /// `dtype`, else f32): `(bytes the model will hold, bytes held while it converts)`, beyond what the
    /// store holds; `None` when the store lacks it. From the store's index alone: nothing is converted.
    pub(super) fn build_bytes(&self, name: &str, shape: &[usize], linear: bool, dtype: crate::dtype::WeightDtype) -> Option<(u64, u64)> {
        if self.converted_meta.contains_key(name) {
            return Some((0, 0)); // converted while streaming: already held, moved into the model
        }
        let numel = shape.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64));
        let f32_bytes = numel.saturating_mul(4);
        if let Some(e) = self.entries.get(name) {
            return Some(match (linear, shape) {
                (true, &[n, k]) => {
                    let (n, k) = (n as u64, k as u64);
                    let nk = n.saturating_mul(k);
                    match e.ggml {
                        // GGUF blocks, converted without loss into the forms of `dtype::ggml::to_qweight`
                        Some(GgmlType::Q8_0) => (nk.saturating_add(nk / 32 * 4), 0),
                        Some(GgmlType::Q4_0 | GgmlType::Q4_1) if k % 64 == 0 => (nk / 2 + nk / 32 * 8, 0),
                        Some(GgmlType::Q4_0) => (nk.saturating_add(nk / 32 * 4), 0),
                        Some(_) => (f32_bytes, 0),
                        // converted from its f32 form
                        None => (super::budget::stored_weight_bytes(name, n, k, dtype), f32_bytes),
                    }
                }
                _ => (f32_bytes, 0),
            });
        }
        // pre-quantized: `<name>.qweight` (+ `.scales`, `.zeros`) copied out as they are
        let parts = [QWEIGHT_SUFFIX, SCALES_SUFFIX, ZEROS_SUFFIX].map(|suf| self.entries.get(&format!("{name}{suf}")).map_or(0, |e| (e.end - e.start) as u64));
        (parts[0] > 0).then(|| (parts.iter().sum(), 0))
    }

    /// The stored dtype of `name` (`F32`, `F16`, `BF16`, ...).
    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.entries.get(name).map(|e| e.dtype)
    }
}

/// A pre-quantized weight's checked parts but its codes ([`WeightStore::packed_form`]).
enum PackedForm {
    Q4 { group: usize, scales: Vec<f32>, zeros: Vec<f32> },
    Q8 { scales: Vec<f32> },
}

impl PackedForm {
    /// The weight, with `codes` the bytes of its `.qweight` (checked against `[n, k]` by `packed_form`).
    fn with_codes(self, n: usize, k: usize, codes: Vec<u8>) -> QWeight {
        match self {
            PackedForm::Q4 { group, scales, zeros } => QWeight::Q4 { n, k, group, packed: codes, scales, zeros },
            PackedForm::Q8 { scales } => QWeight::Q8 { n, k, codes: codes.into_iter().map(|b| b as i8).collect(), scales },
        }
    }
}

/// f32 values of a tensor's little-endian bytes in a float dtype.
pub(super) fn decode_f32(name: &str, dtype: Dtype, raw: &[u8]) -> Result<Vec<f32>> {
    let mut out = vec![0.0; raw.len() / float_size(name, dtype)?];
    decode_f32_into(name, dtype, raw, &mut out)?;
    Ok(out)
}

/// [`decode_f32`] into `out` (one value per element of `raw`; the caller sized it).
pub(super) fn decode_f32_into(name: &str, dtype: Dtype, raw: &[u8], out: &mut [f32]) -> Result<()> {
    debug_assert_eq!(out.len(), raw.len() / float_size(name, dtype)?);
    // one loop per dtype, each over elements of a constant size (the dtype not matched per element)
    fn fill<const N: usize>(out: &mut [f32], raw: &[u8], f: impl Fn([u8; N]) -> f32) {
        for (o, c) in out.iter_mut().zip(raw.chunks_exact(N)) {
            *o = f(c.try_into().unwrap_or([0; N]));
        }
    }
    match dtype {
        Dtype::F32 => fill(out, raw, f32::from_le_bytes),
        Dtype::F16 => fill(out, raw, |b| half::f16::from_le_bytes(b).to_f32()),
        Dtype::BF16 => fill(out, raw, |b| half::bf16::from_le_bytes(b).to_f32()),
        Dtype::F64 => fill(out, raw, |b| f64::from_le_bytes(b) as f32),
        other => return Err(T5Error::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") }),
    }
    Ok(())
}

/// Bytes per element of the float dtypes [`decode_f32`] reads; a typed error for any other.
fn float_size(name: &str, dtype: Dtype) -> Result<usize> {
    match dtype {
        Dtype::F32 => Ok(4),
        Dtype::F16 | Dtype::BF16 => Ok(2),
        Dtype::F64 => Ok(8),
        other => Err(T5Error::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") }),
    }
}
