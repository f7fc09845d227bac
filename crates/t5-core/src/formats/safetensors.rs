//! safetensors files: a whole file (or shard) indexed into a [`WeightStore`] without copying
//! ([`WeightStore::add_shard`]), the shard list of `model.safetensors.index.json`, the header
//! metadata, and writing a store back as safetensors (`t5-web convert`, [`quantize_checkpoint`]).
//! Files streamed in pieces go through [`super::stream::ShardStream`].

use super::store::{Entry, WeightStore};
use crate::dtype::quant::{scheme_note, METADATA_KEY, QWEIGHT_SUFFIX, SCALES_SUFFIX, ZEROS_SUFFIX};
use crate::dtype::{QWeight, WeightDtype};
use crate::error::{Result, T5Error};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;

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
    /// Add one safetensors file (a shard of the checkpoint).
    pub fn add_shard(&mut self, file: &str, bytes: Vec<u8>) -> Result<()> {
        self.room_after(file, bytes.len() as u64)?;
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



    /// The whole checkpoint as one safetensors file, every tensor in its stored dtype, with the
    /// `{"format": "pt"}` metadata transformers writes. Names that alias the bytes of an earlier
    /// tensor (tied embeddings in a PyTorch state dict: `encoder.embed_tokens.weight`,
    /// `decoder.embed_tokens.weight`, `lm_head.weight` sharing `shared.weight`) are written once,
    /// under the first name, as transformers' save_pretrained does; `lm_head.weight` is kept
    /// when `keep_lm_head` (a config with untied embeddings needs it in the file).
    pub fn to_safetensors(&self, keep_lm_head: bool) -> Result<Vec<u8>> {
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

/// Quantize a checkpoint: every 2-D `*.weight` tensor except the relative attention bias (the
/// linear weights, `shared`, `lm_head`) stored as `dtype` (with the same fallbacks as load-time
/// quantization), everything else as f32. Returns the safetensors bytes (the scheme note in the
/// header metadata under [`METADATA_KEY`]) and the fallbacks.
pub fn quantize_checkpoint(store: &WeightStore, dtype: WeightDtype) -> Result<(Vec<u8>, Vec<(String, WeightDtype)>)> {
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut fallbacks = Vec::new();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for name in store.names() {
        let shape = store.shape(name).unwrap_or(&[]).to_vec();
        let t = store.get(name, &shape)?;
        let linear = shape.len() == 2 && name.ends_with(".weight") && !name.contains("relative_attention_bias");
        if !linear {
            out.push((name.clone(), Dtype::F32, shape, f32_bytes(&t.data)));
            continue;
        }
        let q = QWeight::from_tensor(t, dtype.storage_for(name, shape[1]));
        if q.dtype() != dtype {
            fallbacks.push((name.clone(), q.dtype()));
        }
        match q {
            QWeight::F32 { data, .. } => out.push((name.clone(), Dtype::F32, shape, f32_bytes(&data))),
            QWeight::F16 { data, .. } => out.push((name.clone(), Dtype::F16, shape, data.iter().flat_map(|h| h.to_le_bytes()).collect())),
            QWeight::BF16 { data, .. } => out.push((name.clone(), Dtype::BF16, shape, data.iter().flat_map(|h| h.to_le_bytes()).collect())),
            QWeight::Q8 { n, k, codes, scales } => {
                out.push((format!("{name}{QWEIGHT_SUFFIX}"), Dtype::I8, vec![n, k], codes.iter().map(|&c| c as u8).collect()));
                out.push((format!("{name}{SCALES_SUFFIX}"), Dtype::F32, vec![n], f32_bytes(&scales)));
            }
            QWeight::Q4 { n, k, group, packed, scales, zeros } => {
                out.push((format!("{name}{QWEIGHT_SUFFIX}"), Dtype::U8, vec![n, k / 2], packed));
                out.push((format!("{name}{SCALES_SUFFIX}"), Dtype::F32, vec![n, k / group], f32_bytes(&scales)));
                out.push((format!("{name}{ZEROS_SUFFIX}"), Dtype::F32, vec![n, k / group], f32_bytes(&zeros)));
            }
        }
    }
    let views: Vec<(String, TensorView<'_>)> = out
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| T5Error::BadWeights { file: None, msg: e.to_string() })?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(METADATA_KEY.to_string(), scheme_note(dtype, &fallbacks));
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| T5Error::BadWeights { file: None, msg: e.to_string() })?;
    Ok((bytes, fallbacks))
}
