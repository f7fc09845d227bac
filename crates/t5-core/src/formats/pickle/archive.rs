//! The containers of a pickled state dict: torch.save's zip archive and the legacy stream (module
//! docs of [`super`]), and the storages their tensors point at: views checked against their
//! storage, contiguous ones kept in place, strided ones copied out within a bound.

use super::machine::Machine;
use super::*;

pub(super) struct Loaded<'a> {
    pub(super) file: &'a str,
    pub(super) bytes: &'a [u8],
    pub(super) arena: Vec<Obj>,
    pub(super) top: Id,
    /// Storage key → byte range in `bytes`.
    pub(super) storages: HashMap<String, Range<usize>>,
    /// Bytes copied out so far (strided views, nested storages), bounded like one copy.
    pub(super) copied: std::cell::Cell<u64>,
    /// Memory the caller can still give (the load's budget less what it holds): copies beyond it
    /// are a `ModelTooLarge` error before they are made.
    pub(super) budget: Option<u64>,
}

pub(super) fn load<'a>(bytes: &'a [u8], file: &'a str, nested: usize) -> Result<Loaded<'a>> {
    if bytes.starts_with(b"PK\x03\x04") {
        load_zip(bytes, file, nested)
    } else if bytes.first() == Some(&0x80) {
        load_legacy(bytes, file, nested)
    } else if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        Err(bad(file, "PyTorch's tar checkpoint format (before 0.4) is not supported; re-save it with a recent torch or convert it to safetensors"))
    } else {
        Err(bad(file, "not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle stream)"))
    }
}

fn load_zip<'a>(bytes: &'a [u8], file: &'a str, nested: usize) -> Result<Loaded<'a>> {
    let zerr = |e: zip::result::ZipError| bad(file, format!("zip: {e}"));
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zerr)?;
    // name → byte range of each stored entry
    let mut entries: HashMap<String, Range<usize>> = HashMap::new();
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).map_err(zerr)?;
        let name = f.name().map_err(zerr)?.to_string();
        if f.is_dir() {
            continue;
        }
        if f.compression() != zip::CompressionMethod::Stored || f.encrypted() {
            return Err(bad(file, format!("zip entry {name} is compressed or encrypted; torch.save stores entries uncompressed")));
        }
        let start = f.data_start().ok_or_else(|| bad(file, format!("zip entry {name}: no data offset")))?;
        let range = usize::try_from(start)
            .ok()
            .and_then(|s| usize::try_from(f.size()).ok().and_then(|n| s.checked_add(n)).map(|e| s..e))
            .filter(|r| r.end <= bytes.len())
            .ok_or_else(|| bad(file, format!("zip entry {name} lies outside the file")))?;
        entries.insert(name, range);
    }
    let pkl = entries
        .keys()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .min_by_key(|n| n.len())
        .cloned()
        .ok_or_else(|| bad(file, "zip archive without data.pkl: not a torch.save checkpoint"))?;
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    if let Some(r) = entries.get(&format!("{prefix}byteorder")) {
        if &bytes[r.clone()] != b"little" {
            return Err(bad(file, "big-endian checkpoint: not supported"));
        }
    }
    let mut m = Machine::new(file, &bytes[entries[&pkl].clone()], true, nested);
    let top = m.run()?;
    let data_prefix = format!("{prefix}data/");
    let storages = entries.iter().filter_map(|(n, r)| n.strip_prefix(&data_prefix).map(|k| (k.to_string(), r.clone()))).collect();
    Ok(Loaded { file, bytes, arena: m.arena, top, storages, copied: Default::default(), budget: None })
}

const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;

fn load_legacy<'a>(bytes: &'a [u8], file: &'a str, nested: usize) -> Result<Loaded<'a>> {
    let mut pos = 0usize;
    let mut next = |persistent: bool| -> Result<(Machine<'a>, Id)> {
        let mut m = Machine::new(file, &bytes[pos..], persistent, nested);
        let top = m.run()?;
        pos += m.pos;
        Ok((m, top))
    };
    let (m, magic) = next(false)?;
    if m.int_of(magic) != Some(LEGACY_MAGIC) {
        // not torch.save: a plain pickle of the object (`pickle.dump(state_dict)`), whose storages
        // come inline through `torch.storage._load_from_bytes`
        return Ok(Loaded { file, bytes, arena: m.arena, top: magic, storages: HashMap::new(), copied: Default::default(), budget: None });
    }
    let (m, version) = next(false)?;
    if m.int_of(version) != Some(1001) {
        return Err(bad(file, "unsupported legacy torch.save protocol version"));
    }
    let (m, info) = next(false)?;
    if let Obj::Dict(items) = &m.arena[info] {
        for (k, v) in items {
            if m.str_of(*k) == Some("little_endian") && m.int_of(*v) == Some(0) {
                return Err(bad(file, "big-endian checkpoint: not supported"));
            }
        }
    }
    let (obj, top) = next(true)?;
    let (m, keys_id) = next(false)?;
    let keys: Vec<String> = match m.seq_of(keys_id) {
        Some(ids) => ids.iter().map(|&i| m.str_of(i).map(str::to_string).ok_or_else(|| bad(file, "storage keys must be strings"))).collect::<Result<_>>()?,
        None => return Err(bad(file, "storage key list missing")),
    };
    let mut storages = HashMap::new();
    for key in keys {
        let dtype = *obj.storage_types.get(&key).ok_or_else(|| bad(file, format!("storage {key} is listed but never used")))?;
        let head = bytes.get(pos..pos + 8).ok_or_else(|| bad(file, format!("storage {key}: truncated")))?;
        let numel = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
        let n = numel
            .checked_mul(dtype_size(dtype) as u64)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| (pos + 8).checked_add(n))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad(file, format!("storage {key}: {numel} elements run past the end of the file")))?;
        storages.insert(key, pos + 8..n);
        pos = n;
    }
    Ok(Loaded { file, bytes, arena: obj.arena, top, storages, copied: Default::default(), budget: None })
}

impl<'a> Loaded<'a> {
    fn storage_bytes<'s>(&'s self, s: &'s StorageRef) -> Result<&'s [u8]> {
        let all: &[u8] = match &s.data {
            StorageData::Key(k) => {
                let r = self.storages.get(k).ok_or_else(|| bad(self.file, format!("storage {k} is missing from the file")))?;
                &self.bytes[r.clone()]
            }
            StorageData::Owned(b) => b.as_slice(),
        };
        let el = dtype_size(s.dtype) as u64;
        let start = s.view_offset.checked_mul(el).and_then(|x| usize::try_from(x).ok()).filter(|&x| x <= all.len());
        start.map(|st| &all[st..]).ok_or_else(|| bad(self.file, "storage view outside its storage"))
    }

    /// The top object as one storage (nested `_load_from_bytes` files), bytes copied.
    pub(super) fn as_storage(&self) -> Result<StorageRef> {
        match &self.arena[self.top] {
            Obj::Storage(s) => {
                let b = self.storage_bytes(s)?.to_vec();
                Ok(StorageRef { data: StorageData::Owned(std::rc::Rc::new(b)), dtype: s.dtype, view_offset: 0, numel: s.numel })
            }
            o => Err(bad(self.file, format!("_load_from_bytes gave a {}, expected a storage", obj_kind(o)))),
        }
    }

    pub(super) fn tensor(&self, name: &str, t: &TensorRef) -> Result<TorchTensor> {
        let file = self.file;
        let el = dtype_size(t.dtype) as u64;
        let storage = self.storage_bytes(&t.storage)?;
        let too_big = || bad(file, format!("tensor {name:?}: shape {:?} is too large", t.shape));
        let numel = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(too_big)?;
        let shape: Vec<usize> = t.shape.iter().map(|&d| usize::try_from(d).map_err(|_| too_big())).collect::<Result<_>>()?;
        if numel == 0 {
            return Ok(TorchTensor { name: name.to_string(), dtype: t.dtype, shape, data: TensorBytes::Owned(Vec::new()) });
        }
        // last element index + 1, in elements
        let mut span = t.offset.checked_add(1).ok_or_else(too_big)?;
        for (&d, &s) in t.shape.iter().zip(&t.stride) {
            span = (d - 1).checked_mul(s).and_then(|x| span.checked_add(x)).ok_or_else(too_big)?;
        }
        let span_bytes = span.checked_mul(el).ok_or_else(too_big)?;
        if span_bytes > storage.len() as u64 {
            return Err(bad(
                file,
                format!("tensor {name:?} (shape {:?}, stride {:?}, offset {}) reaches past its storage of {} bytes", t.shape, t.stride, t.offset, storage.len()),
            ));
        }
        // a strided view is copied out: bound the copies (stride-0 views can be far larger than
        // their storage) by the file, so a hostile file cannot ask for unbounded memory: views of a
        // state dict (transposed, permuted, nested storages) copy at most their storages' bytes
        let limit = (self.bytes.len() as u64).saturating_mul(MAX_COPY_FACTOR).saturating_add(MAX_COPY_FLOOR);
        let nbytes = numel.checked_mul(el).filter(|&n| n <= limit.max(span_bytes)).ok_or_else(|| {
            bad(file, format!("tensor {name:?}: shape {:?} with stride {:?} would expand to more than {limit} bytes", t.shape, t.stride))
        })?;
        let copies = !contiguous_strides(&t.shape, &t.stride) || matches!(t.storage.data, StorageData::Owned(_));
        if copies {
            let total = self.copied.get().saturating_add(nbytes);
            if total > limit {
                return Err(bad(file, format!("tensor {name:?}: copying strided or nested tensors would exceed {limit} bytes")));
            }
            if let Some(budget) = self.budget.filter(|&b| total > b) {
                return Err(T5Error::ModelTooLarge(format!(
                    "{file}: tensor {name:?}: copying its strided or nested tensors takes {total} bytes, more than the {budget} the memory limit leaves"
                )));
            }
            self.copied.set(total);
        }
        let el = el as usize;
        let offset = t.offset as usize * el;
        let nbytes = nbytes as usize;
        let contiguous = contiguous_strides(&t.shape, &t.stride);
        let data = if contiguous {
            match &t.storage.data {
                StorageData::Key(_) => {
                    let base = storage.as_ptr() as usize - self.bytes.as_ptr() as usize;
                    TensorBytes::File(base + offset..base + offset + nbytes)
                }
                StorageData::Owned(_) => TensorBytes::Owned(storage[offset..offset + nbytes].to_vec()),
            }
        } else {
            let mut out = Vec::with_capacity(nbytes);
            let mut idx = vec![0u64; shape.len()];
            for _ in 0..numel {
                let at = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
                let b = at as usize * el;
                out.extend_from_slice(&storage[b..b + el]);
                for k in (0..idx.len()).rev() {
                    idx[k] += 1;
                    if idx[k] < t.shape[k] {
                        break;
                    }
                    idx[k] = 0;
                }
            }
            TensorBytes::Owned(out)
        };
        Ok(TorchTensor { name: name.to_string(), dtype: t.dtype, shape, data })
    }

    fn tensors_of(&self, dict: &[(Id, Id)]) -> Result<Vec<TorchTensor>> {
        let mut out: Vec<TorchTensor> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (k, v) in dict {
            let (Obj::Str(name), Obj::Tensor(t)) = (&self.arena[*k], &self.arena[*v]) else { continue };
            let t = self.tensor(name, t)?;
            // a repeated key: the last value wins, as in Python
            match at.get(name.as_str()) {
                Some(&i) => out[i] = t,
                None => {
                    at.insert(name, out.len());
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    pub(super) fn state_dict(&self) -> Result<Vec<TorchTensor>> {
        let Obj::Dict(items) = &self.arena[self.top] else {
            return Err(bad(self.file, format!("the checkpoint holds a {}, not a state dict", obj_kind(&self.arena[self.top]))));
        };
        let tensors = self.tensors_of(items)?;
        if !tensors.is_empty() {
            return Ok(tensors);
        }
        for (k, v) in items {
            if let (Obj::Str(key), Obj::Dict(inner)) = (&self.arena[*k], &self.arena[*v]) {
                if matches!(key.as_str(), "state_dict" | "model" | "module" | "model_state_dict") {
                    let tensors = self.tensors_of(inner)?;
                    if !tensors.is_empty() {
                        return Ok(tensors);
                    }
                }
            }
        }
        Err(bad(self.file, "the checkpoint's dict holds no tensors"))
    }
}

/// Whether `stride` is the row-major stride of `shape` (dims of size 1 may have any stride).
fn contiguous_strides(shape: &[u64], stride: &[u64]) -> bool {
    let mut expect = 1u64;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expect {
            return false;
        }
        expect = expect.saturating_mul(d);
    }
    true
}

