//! The torch half of the pickle machine: the allow-listed globals, REDUCE over them (tensor and parameter
//! rebuilders, storages, dtypes, `_codecs.encode`, nested `_load_from_bytes`) and persistent ids resolved to storage
//! references. The opcodes and the object arena are in [`super::machine`].

use super::archive::load;
use super::machine::Machine;
use super::*;

impl<'a> Machine<'a> {
    pub(super) fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match allowed_global(module, name) {
            Some(g) => self.push(Obj::Global(g)),
            None => Err(self.err(format!(
                "refusing global {module}.{name}: a weights file has no reason to use it (only the torch tensor and storage \
                 rebuilders and collections.OrderedDict are allowed; nothing in the file was executed)"
            ))),
        }
    }

    pub(super) fn args_of(&self, args: Id) -> Result<Vec<Id>> {
        match &self.arena[args] {
            Obj::Tuple(v) if v.len() > 8 => Err(self.err(format!("REDUCE with {} arguments", v.len()))),
            Obj::Tuple(v) => Ok(v.clone()),
            o => Err(self.err(format!("REDUCE arguments must be a tuple, not a {}", obj_kind(o)))),
        }
    }

    pub(super) fn reduce(&mut self, func: Id, args: Id) -> Result<Obj> {
        let g = match &self.arena[func] {
            Obj::Global(g) => *g,
            o => return Err(self.err(format!("REDUCE on a {} is not allowed", obj_kind(o)))),
        };
        let a = self.args_of(args)?;
        match g {
            Global::OrderedDict => match a.as_slice() {
                [] => Ok(Obj::Dict(Vec::new())),
                [items] => {
                    let n = self.seq_of(*items).ok_or_else(|| self.err("OrderedDict(items) needs a list of pairs"))?.len();
                    self.charge(n)?;
                    let pairs = self.seq_of(*items).unwrap_or_default().to_vec();
                    let mut out = Vec::with_capacity(pairs.len());
                    for p in pairs {
                        match self.seq_of(p) {
                            Some([k, v]) => out.push((*k, *v)),
                            _ => return Err(self.err("OrderedDict(items) needs (key, value) pairs")),
                        }
                    }
                    Ok(Obj::Dict(out))
                }
                _ => Err(self.err("OrderedDict takes at most one argument")),
            },
            Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
                let v3 = g == Global::RebuildTensorV3;
                let need = if v3 { 7 } else { 6 };
                if a.len() < need || a.len() > need + 1 {
                    return Err(self.err(format!("_rebuild_tensor_v{} takes {need} or {} arguments, got {}", if v3 { 3 } else { 2 }, need + 1, a.len())));
                }
                let storage = match &self.arena[a[0]] {
                    Obj::Storage(s) => s.clone(),
                    o => return Err(self.err(format!("tensor storage is a {}, not a storage reference", obj_kind(o)))),
                };
                let offset = self.u64_of(a[1], "storage offset")?;
                let dims = self.seq_of(a[2]).map_or(0, <[Id]>::len) + self.seq_of(a[3]).map_or(0, <[Id]>::len);
                self.charge(dims)?;
                let shape = self.ints_of(a[2], "tensor size")?;
                let stride = self.ints_of(a[3], "tensor stride")?;
                if shape.len() != stride.len() {
                    return Err(self.err(format!("tensor size has {} dims, stride {}", shape.len(), stride.len())));
                }
                let dtype = if v3 {
                    match &self.arena[a[6]] {
                        Obj::Global(Global::TorchDtype(d)) => *d,
                        o => return Err(self.err(format!("_rebuild_tensor_v3 dtype is a {}", obj_kind(o)))),
                    }
                } else {
                    storage.dtype
                };
                Ok(Obj::Tensor(TensorRef { storage, dtype, offset, shape, stride }))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let dims = match a.first().map(|&t| &self.arena[t]) {
                    Some(Obj::Tensor(t)) => t.shape.len() * 2,
                    _ => return Err(self.err("_rebuild_parameter needs a tensor")),
                };
                self.charge(dims)?;
                match &self.arena[a[0]] {
                    Obj::Tensor(t) => Ok(Obj::Tensor(t.clone())),
                    _ => Err(self.err("_rebuild_parameter needs a tensor")),
                }
            }
            Global::LoadFromBytes => {
                let n = match a.as_slice() {
                    [b] => match &self.arena[*b] {
                        Obj::Bytes(b) => b.len(),
                        _ => 0,
                    },
                    _ => 0,
                };
                self.charge(n)?;
                let b = match a.as_slice() {
                    [b] => match &self.arena[*b] {
                        Obj::Bytes(b) => b.clone(),
                        o => return Err(self.err(format!("_load_from_bytes needs bytes, not a {}", obj_kind(o)))),
                    },
                    _ => return Err(self.err("_load_from_bytes takes one argument")),
                };
                if self.nested >= MAX_NESTED {
                    return Err(self.err("storages nested too deeply"));
                }
                let inner = load(&b, self.file, self.nested + 1)?;
                let s = inner.as_storage()?;
                Ok(Obj::Storage(s))
            }
            Global::CodecsEncode => {
                let (text, enc) = match a.as_slice() {
                    [t, e] => (self.str_of(*t), self.str_of(*e)),
                    _ => (None, None),
                };
                match (text, enc) {
                    (Some(t), Some("latin1" | "latin-1")) => {
                        let bytes: Option<Vec<u8>> = t.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                        bytes.map(Obj::Bytes).ok_or_else(|| self.err("_codecs.encode: text outside latin-1"))
                    }
                    _ => Err(self.err("_codecs.encode is only allowed as encode(str, \"latin1\")")),
                }
            }
            Global::StorageType(_) | Global::TorchDtype(_) => Err(self.err("calling a storage class or dtype is not allowed")),
        }
    }

    /// `('storage', torch.XStorage, key, location, numel[, view_metadata])`.
    pub(super) fn persistent_load(&mut self, pid: Id) -> Result<Obj> {
        if !self.persistent {
            return Err(self.err("persistent id outside the object pickle"));
        }
        let items = match &self.arena[pid] {
            Obj::Tuple(v) if v.len() > 6 => return Err(self.err(format!("persistent id with {} fields", v.len()))),
            Obj::Tuple(v) => v.clone(),
            o => return Err(self.err(format!("persistent id is a {}, expected a tuple", obj_kind(o)))),
        };
        let tag = items.first().and_then(|&i| self.str_of(i)).unwrap_or("");
        if tag != "storage" {
            return Err(self.err(format!("persistent id of kind {tag:?} is not allowed (only storages)")));
        }
        if items.len() != 5 && items.len() != 6 {
            return Err(self.err(format!("storage persistent id has {} fields", items.len())));
        }
        let dtype = match &self.arena[items[1]] {
            Obj::Global(Global::StorageType(d)) => *d,
            o => return Err(self.err(format!("storage type is a {}", obj_kind(o)))),
        };
        let key = self.str_of(items[2]).ok_or_else(|| self.err("storage key must be a string"))?.to_string();
        let numel = self.u64_of(items[4], "storage size")?;
        let mut view_offset = 0;
        let mut view_numel = numel;
        if items.len() == 6 {
            match &self.arena[items[5]] {
                Obj::None => {}
                Obj::Tuple(v) if v.len() == 3 => {
                    let v = v.clone();
                    view_offset = self.u64_of(v[1], "view offset")?;
                    view_numel = self.u64_of(v[2], "view size")?;
                }
                _ => return Err(self.err("bad storage view metadata")),
            }
        }
        if let Some(&prev) = self.storage_types.get(&key) {
            if prev != dtype {
                return Err(self.err(format!("storage {key} is used with two element types")));
            }
        }
        self.storage_types.insert(key.clone(), dtype);
        Ok(Obj::Storage(StorageRef { data: StorageData::Key(key), dtype, view_offset, numel: view_numel }))
    }
}
