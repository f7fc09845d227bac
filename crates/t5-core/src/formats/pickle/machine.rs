//! The restricted pickle machine: pickle opcodes over an arena of objects, with every length checked
//! against the bytes left and every object counted (module docs of [`super`]). What GLOBAL, REDUCE and
//! persistent ids may build (the allow-listed torch globals, storage references) is in [`super::torch`].

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
}
