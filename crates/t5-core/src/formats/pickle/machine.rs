//! The restricted pickle machine: pickle opcodes over an arena of objects, the allow-listed torch
//! globals only, persistent ids resolved to storage references (module docs of [`super`]).

use super::archive::load;
use super::*;

/// How persistent ids are read: the zip format's 5-tuples or the legacy format's 6-tuples (both
/// accepted either way; the tag only sharpens messages).
pub(super) struct Machine<'a> {
    pub(super) file: &'a str,
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) arena: Vec<Obj>,
    pub(super) stack: Vec<Id>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u64, Id>,
    /// Whether persistent ids (storage references) are expected in this pickle.
    pub(super) persistent: bool,
    /// Element type of each storage key seen (legacy format: needed to skip storages).
    pub(super) storage_types: HashMap<String, Dtype>,
    pub(super) nested: usize,
    /// Items that REDUCE may still copy (containers built from memoized objects can be reused
    /// any number of times: without a bound a small file could ask for unbounded work).
    pub(super) budget: u64,
    /// Objects (and memo entries) this pickle may create: [`max_objects`] of its size.
    pub(super) max_objects: usize,
}

impl<'a> Machine<'a> {
    pub(super) fn new(file: &'a str, data: &'a [u8], persistent: bool, nested: usize) -> Self {
        Machine {
            file,
            data,
            pos: 0,
            arena: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            persistent,
            storage_types: HashMap::new(),
            nested,
            budget: data.len() as u64 * 16 + (1 << 20),
            max_objects: max_objects(data.len()),
        }
    }

    pub(super) fn charge(&mut self, n: usize) -> Result<()> {
        self.budget = self.budget.checked_sub(n as u64).ok_or_else(|| self.err("the pickle asks for far more work than its size justifies"))?;
        Ok(())
    }

    pub(super) fn err(&self, msg: impl Into<String>) -> T5Error {
        bad(self.file, format!("pickle: {}", msg.into()))
    }

    pub(super) fn alloc(&mut self, o: Obj) -> Result<Id> {
        if self.arena.len() >= self.max_objects {
            return Err(self.err(format!("more objects than a {}-byte pickle can hold ({})", self.data.len(), self.max_objects)));
        }
        self.arena.push(o);
        Ok(self.arena.len() - 1)
    }

    /// PUT / MEMOIZE: a new key counts against [`max_objects`] like an object.
    pub(super) fn memoize(&mut self, k: u64, id: Id) -> Result<()> {
        if self.memo.len() >= self.max_objects && !self.memo.contains_key(&k) {
            return Err(self.err(format!("more memo entries than a {}-byte pickle can hold ({})", self.data.len(), self.max_objects)));
        }
        self.memo.insert(k, id);
        Ok(())
    }

    pub(super) fn push(&mut self, o: Obj) -> Result<()> {
        let id = self.alloc(o)?;
        self.stack.push(id);
        Ok(())
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| self.err("truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    pub(super) fn len_u64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err("length too large"))
    }

    /// A text line (protocol 0 opcodes), without the newline.
    pub(super) fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("truncated line"))?;
        self.pos += nl + 1;
        std::str::from_utf8(&rest[..nl]).map_err(|_| self.err("line is not UTF-8"))
    }

    pub(super) fn pop(&mut self) -> Result<Id> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.err("stack underflow (mark)"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    pub(super) fn top(&self) -> Result<Id> {
        self.stack.last().copied().ok_or_else(|| self.err("stack underflow"))
    }

    pub(super) fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let m = self.marks.pop().ok_or_else(|| self.err("no mark"))?;
        if m > self.stack.len() {
            return Err(self.err("corrupt mark"));
        }
        Ok(self.stack.split_off(m))
    }

    pub(super) fn str_of(&self, id: Id) -> Option<&str> {
        match &self.arena[id] {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn int_of(&self, id: Id) -> Option<i128> {
        match &self.arena[id] {
            Obj::Int(i) => Some(*i),
            Obj::Bool(b) => Some(*b as i128),
            _ => None,
        }
    }

    pub(super) fn u64_of(&self, id: Id, what: &str) -> Result<u64> {
        self.int_of(id).and_then(|i| u64::try_from(i).ok()).ok_or_else(|| self.err(format!("{what} must be a non-negative integer")))
    }

    pub(super) fn seq_of(&self, id: Id) -> Option<&[Id]> {
        match &self.arena[id] {
            Obj::Tuple(v) | Obj::List(v) => Some(v),
            _ => None,
        }
    }

    pub(super) fn ints_of(&self, id: Id, what: &str) -> Result<Vec<u64>> {
        let items = self.seq_of(id).ok_or_else(|| self.err(format!("{what} must be a tuple of integers")))?.to_vec();
        items.into_iter().map(|i| self.u64_of(i, what)).collect()
    }

    pub(super) fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match allowed_global(module, name) {
            Some(g) => self.push(Obj::Global(g)),
            None => Err(self.err(format!(
                "refusing global {module}.{name}: a weights file has no reason to use it (only the torch tensor and storage \
                 rebuilders and collections.OrderedDict are allowed; nothing in the file was executed)"
            ))),
        }
    }

    /// Run until STOP; returns the object on the stack.
    pub(super) fn run(&mut self) -> Result<Id> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {v}")));
                    }
                }
                0x95 => {
                    // FRAME: a length hint
                    self.u64()?;
                }
                b'.' => {
                    let id = self.pop()?;
                    return Ok(id);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'N' => self.push(Obj::None)?,
                0x88 => self.push(Obj::Bool(true))?,
                0x89 => self.push(Obj::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Obj::Int(v as i128))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Obj::Int(v as i128))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Obj::Int(v as i128))?
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4: little-endian two's complement
                    let n = if op == 0x8a { self.u8()? as usize } else { self.u32()? as usize };
                    let b = self.take(n)?;
                    if n > 16 {
                        return Err(self.err("integer too large"));
                    }
                    let mut v: i128 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i128) << (8 * i);
                    }
                    if n > 0 && n < 16 && b[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    self.push(Obj::Int(v))?
                }
                b'I' | b'L' => {
                    // INT / LONG (protocol 0)
                    let l = self.line()?;
                    let l = l.trim_end_matches('L');
                    let o = match l {
                        "00" => Obj::Bool(false),
                        "01" => Obj::Bool(true),
                        _ => Obj::Int(l.parse().map_err(|_| self.err(format!("bad integer {l:?}")))?),
                    };
                    self.push(o)?
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.push(Obj::Float(f64::from_be_bytes(b.try_into().unwrap_or([0; 8]))))?
                }
                b'F' => {
                    let l = self.line()?;
                    let v = l.parse().map_err(|_| self.err(format!("bad float {l:?}")))?;
                    self.push(Obj::Float(v))?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?;
                    let s = std::str::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))?;
                    self.push(Obj::Str(s.to_string()))?
                }
                b'V' => {
                    let l = self.line()?.to_string();
                    self.push(Obj::Str(l))?
                }
                b'T' | b'U' => {
                    // BINSTRING / SHORT_BINSTRING (py2 str): bytes, read as text when UTF-8
                    let n = if op == b'T' { self.u32()? as usize } else { self.u8()? as usize };
                    let b = self.take(n)?;
                    let o = match std::str::from_utf8(b) {
                        Ok(s) => Obj::Str(s.to_string()),
                        Err(_) => Obj::Bytes(b.to_vec()),
                    };
                    self.push(o)?
                }
                b'S' => {
                    let l = self.line()?;
                    let s = l.trim();
                    let s = s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')).or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                    let s = s.ok_or_else(|| self.err("bad STRING"))?.to_string();
                    self.push(Obj::Str(s))?
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(Obj::Bytes(b))?
                }
                b')' => self.push(Obj::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Obj::Tuple(items))?
                }
                b']' => self.push(Obj::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    match &mut self.arena[l] {
                        Obj::List(items) => items.push(v),
                        o => return Err(bad(self.file, format!("pickle: APPEND to a {}", obj_kind(o)))),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    match &mut self.arena[l] {
                        Obj::List(v) => v.extend(items),
                        o => return Err(bad(self.file, format!("pickle: APPENDS to a {}", obj_kind(o)))),
                    }
                }
                b'}' => self.push(Obj::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("DICT with an odd number of items"));
                    }
                    let pairs = items.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                    self.push(Obj::Dict(pairs))?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    match &mut self.arena[d] {
                        Obj::Dict(items) => items.push((k, v)),
                        o => return Err(bad(self.file, format!("pickle: SETITEM on a {}", obj_kind(o)))),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("SETITEMS with an odd number of items"));
                    }
                    let d = self.top()?;
                    match &mut self.arena[d] {
                        Obj::Dict(v) => v.extend(items.chunks_exact(2).map(|c| (c[0], c[1]))),
                        o => return Err(bad(self.file, format!("pickle: SETITEMS on a {}", obj_kind(o)))),
                    }
                }
                0x8f => self.push(Obj::Set(Vec::new()))?,
                0x90 => {
                    let items = self.pop_mark()?;
                    let s = self.top()?;
                    match &mut self.arena[s] {
                        Obj::Set(v) => v.extend(items),
                        o => return Err(bad(self.file, format!("pickle: ADDITEMS on a {}", obj_kind(o)))),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Set(items))?
                }
                b'p' => {
                    let l = self.line()?;
                    let k: u64 = l.parse().map_err(|_| self.err(format!("bad PUT {l:?}")))?;
                    let t = self.top()?;
                    self.memoize(k, t)?;
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    let t = self.top()?;
                    self.memoize(k, t)?;
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    let t = self.top()?;
                    self.memoize(k, t)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    let t = self.top()?;
                    self.memoize(k, t)?;
                }
                b'g' | b'h' | b'j' => {
                    let k = match op {
                        b'g' => {
                            let l = self.line()?;
                            l.parse().map_err(|_| self.err(format!("bad GET {l:?}")))?
                        }
                        b'h' => self.u8()? as u64,
                        _ => self.u32()? as u64,
                    };
                    let id = *self.memo.get(&k).ok_or_else(|| self.err(format!("memo key {k} not found")))?;
                    self.stack.push(id);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (m, n) = match (self.str_of(module), self.str_of(name)) {
                        (Some(m), Some(n)) => (m.to_string(), n.to_string()),
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    };
                    self.global(&m, &n)?
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let o = self.reduce(func, args)?;
                    self.push(o)?
                }
                b'b' => {
                    // BUILD: state for a dict (OrderedDict._metadata) or a tensor is dropped
                    let _state = self.pop()?;
                    let target = self.top()?;
                    match &self.arena[target] {
                        Obj::Dict(_) | Obj::Tensor(_) => {}
                        o => return Err(self.err(format!("BUILD on a {} is not allowed", obj_kind(o)))),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let o = self.persistent_load(pid)?;
                    self.push(o)?
                }
                b'P' => return Err(self.err("text persistent ids (PERSID) are not used by torch.save")),
                0x81 | 0x92 | b'i' | b'o' => {
                    let name = match op {
                        0x81 => "NEWOBJ",
                        0x92 => "NEWOBJ_EX",
                        b'i' => "INST",
                        _ => "OBJ",
                    };
                    return Err(self.err(format!("opcode {name} builds an arbitrary object and is not allowed in a weights file")));
                }
                0x82..=0x84 => return Err(self.err("extension registry opcodes (EXT1/2/4) are not allowed")),
                0x97 => return Err(self.err("out-of-band buffers (NEXT_BUFFER) are not supported")),
                0x98 => {
                    // READONLY_BUFFER: no-op on our bytes
                }
                other => return Err(self.err(format!("unknown opcode 0x{other:02x} at byte {}", self.pos - 1))),
            }
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

