//! PyTorch checkpoints (`pytorch_model.bin`) read without running Python: a restricted unpickler
//! that understands the pickle opcodes and the handful of globals `torch.save` emits for a state
//! dict, and nothing else.
//!
//! Formats:
//! - torch.save's zip format (torch ≥ 1.6): `<prefix>/data.pkl` holds the pickled object, whose
//!   tensors point at storages through persistent ids `('storage', torch.XStorage, key, location,
//!   numel)`; storage `key` is the stored (uncompressed) entry `<prefix>/data/<key>`.
//! - a plain pickle (`pickle.dump(state_dict)`): storages inline as `torch.storage._load_from_bytes`
//!   of a nested legacy torch.save (bytes as protocol 2's `_codecs.encode(text, "latin1")`).
//! - the legacy format: consecutive pickles (magic number, protocol version, system info, the
//!   object, the sorted storage keys) followed by each storage as an int64 element count and its
//!   raw bytes.
//!
//! Allowed globals: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` / `_v3`,
//! `torch._utils._rebuild_parameter` / `_rebuild_parameter_with_state`, the storage classes
//! (`torch.FloatStorage`, `HalfStorage`, `BFloat16Storage`, ... `UntypedStorage`), torch dtypes
//! (`torch.float16`, ...), `_codecs.encode` (latin-1 text to bytes only) and `torch.storage._load_from_bytes` (a storage pickled by itself: a
//! nested torch.save, read by this same reader). Any other global, and the opcodes that build
//! arbitrary objects (`NEWOBJ`, `INST`, `OBJ`, extension codes), are refused with
//! [`T5Error::BadWeights`] before anything is called: nothing in the file is ever executed.
//!
//! Objects live in an arena addressed by index, so hostile nesting or reference cycles cannot
//! overflow the stack or leak; every length is checked against the bytes that remain.

use crate::error::{Result, T5Error};
use safetensors::tensor::Dtype;
use std::collections::HashMap;
use std::io::Cursor;
use std::ops::Range;

/// A tensor of a PyTorch checkpoint: its name in the state dict, dtype, shape and bytes
/// (little-endian, row-major, contiguous).
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: TensorBytes,
}

/// Where a tensor's bytes are: a range of the checkpoint file (contiguous tensors, zero copy) or
/// a copy (strided views, storages nested in a pickle).
#[derive(Debug, Clone, PartialEq)]
pub enum TensorBytes {
    File(Range<usize>),
    Owned(Vec<u8>),
}

/// Whether `bytes` look like a PyTorch checkpoint (zip archive or legacy pickle stream) rather
/// than a safetensors file.
pub fn looks_like_torch(bytes: &[u8]) -> bool {
    // a safetensors header length can start with 0x80 too (e.g. 0x1780 bytes): its JSON header starts at byte 8
    bytes.starts_with(b"PK\x03\x04") || (bytes.first() == Some(&0x80) && bytes.get(8) != Some(&b'{'))
}

/// The tensors of a `torch.save`d state dict (zip or legacy format). Non-tensor values of the
/// dict are skipped; a dict that holds its tensors under `"state_dict"`, `"model"` or `"module"`
/// is looked into.
pub fn read_torch_checkpoint(bytes: &[u8], file: &str) -> Result<Vec<TorchTensor>> {
    let loaded = load(bytes, file, 0)?;
    loaded.state_dict()
}

const MAX_NESTED: usize = 2;

/// Strided views are copied out up to 4 × max(file size, this).
const MAX_COPY_FLOOR: u64 = 64 << 20;

fn bad(file: &str, msg: impl Into<String>) -> T5Error {
    T5Error::BadWeights { file: Some(file.to_string()), msg: msg.into() }
}

// ---------------------------------------------------------------------------------------------
// objects

type Id = usize;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    LoadFromBytes,
    /// `_codecs.encode(text, "latin1")`: how protocol 2 writes Python 3 bytes.
    CodecsEncode,
    /// A storage class; its element dtype (`UntypedStorage`: bytes).
    StorageType(Dtype),
    /// A torch dtype such as `torch.float16`.
    TorchDtype(Dtype),
}

#[derive(Debug, Clone, PartialEq)]
enum StorageData {
    /// Resolved against the checkpoint's storage table once the object is read.
    Key(String),
    /// Bytes of a storage nested in the pickle (`_load_from_bytes`).
    Owned(std::rc::Rc<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq)]
struct StorageRef {
    data: StorageData,
    dtype: Dtype,
    /// Offset in elements of `dtype` (legacy storage views).
    view_offset: u64,
    numel: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    storage: StorageRef,
    dtype: Dtype,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Obj {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

fn obj_kind(o: &Obj) -> &'static str {
    match o {
        Obj::None => "None",
        Obj::Bool(_) => "bool",
        Obj::Int(_) => "int",
        Obj::Float(_) => "float",
        Obj::Str(_) => "str",
        Obj::Bytes(_) => "bytes",
        Obj::Tuple(_) => "tuple",
        Obj::List(_) => "list",
        Obj::Dict(_) => "dict",
        Obj::Set(_) => "set",
        Obj::Global(_) => "class or function",
        Obj::Storage(_) => "storage",
        Obj::Tensor(_) => "tensor",
    }
}

fn dtype_size(d: Dtype) -> usize {
    match d {
        Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
        Dtype::F16 | Dtype::BF16 | Dtype::I16 | Dtype::U16 => 2,
        _ => 1,
    }
}

fn storage_class(name: &str) -> Option<Dtype> {
    Some(match name {
        "FloatStorage" => Dtype::F32,
        "HalfStorage" => Dtype::F16,
        "BFloat16Storage" => Dtype::BF16,
        "DoubleStorage" => Dtype::F64,
        "LongStorage" => Dtype::I64,
        "IntStorage" => Dtype::I32,
        "ShortStorage" => Dtype::I16,
        "CharStorage" => Dtype::I8,
        "ByteStorage" | "UntypedStorage" => Dtype::U8,
        "BoolStorage" => Dtype::BOOL,
        _ => return None,
    })
}

fn torch_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "float32" | "float" => Dtype::F32,
        "float16" | "half" => Dtype::F16,
        "bfloat16" => Dtype::BF16,
        "float64" | "double" => Dtype::F64,
        "int64" | "long" => Dtype::I64,
        "int32" | "int" => Dtype::I32,
        "int16" | "short" => Dtype::I16,
        "int8" => Dtype::I8,
        "uint8" => Dtype::U8,
        "uint16" => Dtype::U16,
        "uint32" => Dtype::U32,
        "uint64" => Dtype::U64,
        "bool" => Dtype::BOOL,
        _ => return None,
    })
}

fn allowed_global(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_tensor_v3") => Some(Global::RebuildTensorV3),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => Some(Global::RebuildParameterWithState),
        ("torch.storage", "_load_from_bytes") => Some(Global::LoadFromBytes),
        ("_codecs", "encode") => Some(Global::CodecsEncode),
        ("torch", n) => storage_class(n).map(Global::StorageType).or_else(|| torch_dtype(n).map(Global::TorchDtype)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// the machine

/// How persistent ids are read: the zip format's 5-tuples or the legacy format's 6-tuples (both
/// accepted either way; the tag only sharpens messages).
struct Machine<'a> {
    file: &'a str,
    data: &'a [u8],
    pos: usize,
    arena: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    /// Whether persistent ids (storage references) are expected in this pickle.
    persistent: bool,
    /// Element type of each storage key seen (legacy format: needed to skip storages).
    storage_types: HashMap<String, Dtype>,
    nested: usize,
    /// Items that REDUCE may still copy (containers built from memoized objects can be reused
    /// any number of times: without a bound a small file could ask for unbounded work).
    budget: u64,
}

const MAX_OBJECTS: usize = 50_000_000;

impl<'a> Machine<'a> {
    fn new(file: &'a str, data: &'a [u8], persistent: bool, nested: usize) -> Self {
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
        }
    }

    fn charge(&mut self, n: usize) -> Result<()> {
        self.budget = self.budget.checked_sub(n as u64).ok_or_else(|| self.err("the pickle asks for far more work than its size justifies"))?;
        Ok(())
    }

    fn err(&self, msg: impl Into<String>) -> T5Error {
        bad(self.file, format!("pickle: {}", msg.into()))
    }

    fn alloc(&mut self, o: Obj) -> Result<Id> {
        if self.arena.len() >= MAX_OBJECTS {
            return Err(self.err("too many objects"));
        }
        self.arena.push(o);
        Ok(self.arena.len() - 1)
    }

    fn push(&mut self, o: Obj) -> Result<()> {
        let id = self.alloc(o)?;
        self.stack.push(id);
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| self.err("truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn len_u64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err("length too large"))
    }

    /// A text line (protocol 0 opcodes), without the newline.
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("truncated line"))?;
        self.pos += nl + 1;
        std::str::from_utf8(&rest[..nl]).map_err(|_| self.err("line is not UTF-8"))
    }

    fn pop(&mut self) -> Result<Id> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.err("stack underflow (mark)"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top(&self) -> Result<Id> {
        self.stack.last().copied().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let m = self.marks.pop().ok_or_else(|| self.err("no mark"))?;
        if m > self.stack.len() {
            return Err(self.err("corrupt mark"));
        }
        Ok(self.stack.split_off(m))
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match &self.arena[id] {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    fn int_of(&self, id: Id) -> Option<i128> {
        match &self.arena[id] {
            Obj::Int(i) => Some(*i),
            Obj::Bool(b) => Some(*b as i128),
            _ => None,
        }
    }

    fn u64_of(&self, id: Id, what: &str) -> Result<u64> {
        self.int_of(id).and_then(|i| u64::try_from(i).ok()).ok_or_else(|| self.err(format!("{what} must be a non-negative integer")))
    }

    fn seq_of(&self, id: Id) -> Option<&[Id]> {
        match &self.arena[id] {
            Obj::Tuple(v) | Obj::List(v) => Some(v),
            _ => None,
        }
    }

    fn ints_of(&self, id: Id, what: &str) -> Result<Vec<u64>> {
        let items = self.seq_of(id).ok_or_else(|| self.err(format!("{what} must be a tuple of integers")))?.to_vec();
        items.into_iter().map(|i| self.u64_of(i, what)).collect()
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match allowed_global(module, name) {
            Some(g) => self.push(Obj::Global(g)),
            None => Err(self.err(format!(
                "refusing global {module}.{name}: a weights file has no reason to use it (only the torch tensor and storage \
                 rebuilders and collections.OrderedDict are allowed; nothing in the file was executed)"
            ))),
        }
    }

    /// Run until STOP; returns the object on the stack.
    fn run(&mut self) -> Result<Id> {
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
                    self.memo.insert(k, t);
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    let t = self.top()?;
                    self.memo.insert(k, t);
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    let t = self.top()?;
                    self.memo.insert(k, t);
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    let t = self.top()?;
                    self.memo.insert(k, t);
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

    fn args_of(&self, args: Id) -> Result<Vec<Id>> {
        match &self.arena[args] {
            Obj::Tuple(v) if v.len() > 8 => Err(self.err(format!("REDUCE with {} arguments", v.len()))),
            Obj::Tuple(v) => Ok(v.clone()),
            o => Err(self.err(format!("REDUCE arguments must be a tuple, not a {}", obj_kind(o)))),
        }
    }

    fn reduce(&mut self, func: Id, args: Id) -> Result<Obj> {
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
    fn persistent_load(&mut self, pid: Id) -> Result<Obj> {
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

// ---------------------------------------------------------------------------------------------
// file formats

struct Loaded<'a> {
    file: &'a str,
    bytes: &'a [u8],
    arena: Vec<Obj>,
    top: Id,
    /// Storage key → byte range in `bytes`.
    storages: HashMap<String, Range<usize>>,
    /// Bytes copied out so far (strided views, nested storages), bounded like one copy.
    copied: std::cell::Cell<u64>,
}

fn load<'a>(bytes: &'a [u8], file: &'a str, nested: usize) -> Result<Loaded<'a>> {
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
    Ok(Loaded { file, bytes, arena: m.arena, top, storages, copied: Default::default() })
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
        return Ok(Loaded { file, bytes, arena: m.arena, top: magic, storages: HashMap::new(), copied: Default::default() });
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
    Ok(Loaded { file, bytes, arena: obj.arena, top, storages, copied: Default::default() })
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
    fn as_storage(&self) -> Result<StorageRef> {
        match &self.arena[self.top] {
            Obj::Storage(s) => {
                let b = self.storage_bytes(s)?.to_vec();
                Ok(StorageRef { data: StorageData::Owned(std::rc::Rc::new(b)), dtype: s.dtype, view_offset: 0, numel: s.numel })
            }
            o => Err(bad(self.file, format!("_load_from_bytes gave a {}, expected a storage", obj_kind(o)))),
        }
    }

    fn tensor(&self, name: &str, t: &TensorRef) -> Result<TorchTensor> {
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
        // a strided view is copied out: bound the copy (stride-0 views can be far larger than
        // their storage) by the file, so a hostile file cannot ask for unbounded memory
        let limit = (self.bytes.len() as u64).max(MAX_COPY_FLOOR) * 4;
        let nbytes = numel.checked_mul(el).filter(|&n| n <= limit.max(span_bytes)).ok_or_else(|| {
            bad(file, format!("tensor {name:?}: shape {:?} with stride {:?} would expand to more than {limit} bytes", t.shape, t.stride))
        })?;
        let copies = !contiguous_strides(&t.shape, &t.stride) || matches!(t.storage.data, StorageData::Owned(_));
        if copies {
            let total = self.copied.get() + nbytes;
            if total > limit {
                return Err(bad(file, format!("tensor {name:?}: copying strided or nested tensors would exceed {limit} bytes")));
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

    fn state_dict(&self) -> Result<Vec<TorchTensor>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &[u8]) -> Result<(Vec<Obj>, Id)> {
        let mut m = Machine::new("t", p, false, 0);
        let id = m.run()?;
        Ok((m.arena, id))
    }

    #[test]
    fn scalars_and_containers() {
        // protocol 2: {'a': [1, -2, 3.5], 'b': (True, None)}
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00a]q\x01(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00eX\x01\x00\x00\x00b\x88N\x86u.";
        let (arena, top) = run(p).unwrap();
        let Obj::Dict(items) = &arena[top] else { panic!() };
        assert_eq!(items.len(), 2);
        let Obj::List(l) = &arena[items[0].1] else { panic!() };
        assert_eq!(arena[l[0]], Obj::Int(1));
        assert_eq!(arena[l[1]], Obj::Int(-2));
        assert_eq!(arena[l[2]], Obj::Float(3.5));
    }

    #[test]
    fn refuses_globals_and_newobj() {
        for p in [&b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85R."[..], b"\x80\x02cbuiltins\neval\n.", b"cos\nsystem\n(S'id'\ntR."] {
            let e = run(p).unwrap_err();
            assert_eq!(e.code(), "BadWeights");
            assert!(e.to_string().contains("refusing global"), "{e}");
        }
        let e = run(b"\x80\x02ccollections\nOrderedDict\n)\x81.").unwrap_err();
        assert!(e.to_string().contains("NEWOBJ"), "{e}");
    }

    fn expanded(shape: Vec<u64>, stride: Vec<u64>) -> Result<TorchTensor> {
        let bytes = 1.5f32.to_le_bytes().to_vec();
        let storage = StorageRef { data: StorageData::Key("0".into()), dtype: Dtype::F32, view_offset: 0, numel: 1 };
        let t = TensorRef { storage, dtype: Dtype::F32, offset: 0, shape, stride };
        let loaded = Loaded { file: "t", bytes: &bytes, arena: Vec::new(), top: 0, storages: HashMap::from([("0".to_string(), 0..4)]), copied: Default::default() };
        loaded.tensor("x", &t)
    }

    #[test]
    fn stride_zero_views_are_copied_within_bounds() {
        let t = expanded(vec![3, 2], vec![0, 0]).unwrap();
        assert_eq!(t.data, TensorBytes::Owned(1.5f32.to_le_bytes().repeat(6)));
        for (shape, stride) in [(vec![1u64 << 40], vec![0u64]), (vec![u64::MAX, 2], vec![0, 0]), (vec![2], vec![1])] {
            assert_eq!(expanded(shape, stride).unwrap_err().code(), "BadWeights");
        }
    }

    #[test]
    fn reusing_a_big_memoized_list_is_bounded() {
        let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00]q\x01(".to_vec();
        for _ in 0..10_000 {
            p.extend_from_slice(b"K\x01K\x02\x86");
        }
        p.push(b'e');
        for _ in 0..10_000 {
            p.extend_from_slice(b"h\x00h\x01\x85R0");
        }
        p.push(b'.');
        let e = run(&p).unwrap_err();
        assert!(e.to_string().contains("far more work"), "{e}");
    }

    #[test]
    fn hostile_input_is_an_error() {
        for p in [&b""[..], b"\x80", b"X\xff\xff\xff\xff", b"t.", b"a.", b"h\x05.", b"]]]]", b"\x8b\xff\xff\xff\x7f", b"Q."] {
            assert_eq!(run(p).unwrap_err().code(), "BadWeights", "{p:?}");
        }
        // deep nesting and cycles do not recurse
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..100_000 {
            p.extend_from_slice(b"]a");
        }
        p.extend_from_slice(b"h\x00a.");
        run(&p).unwrap();
        assert!(read_torch_checkpoint(&p, "x").is_err());
    }
}
