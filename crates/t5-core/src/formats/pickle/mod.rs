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

mod archive;
mod machine;
mod torch;

use crate::error::{Result, T5Error};
use archive::load;
#[cfg(test)]
use archive::Loaded;
#[cfg(test)]
use machine::Machine;
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
    read_torch_checkpoint_within(bytes, file, None)
}

/// [`read_torch_checkpoint`] with the bytes its copies (strided views, nested storages) may take:
/// beyond `budget` a [`T5Error::ModelTooLarge`] before the copy is made.
pub fn read_torch_checkpoint_within(bytes: &[u8], file: &str, budget: Option<u64>) -> Result<Vec<TorchTensor>> {
    let mut loaded = load(bytes, file, 0)?;
    loaded.budget = budget;
    loaded.state_dict()
}

const MAX_NESTED: usize = 2;

const MAX_OBJECTS: usize = 50_000_000;

/// Objects a pickle of `len` bytes may create: every opcode that creates one (or a memo entry)
/// takes at least one byte, so a pickle holds at most `len` of each; [`MAX_OBJECTS`] bounds any.
fn max_objects(len: usize) -> usize {
    len.min(MAX_OBJECTS)
}

/// Strided views and nested storages are copied out up to [`MAX_COPY_FACTOR`] × the file's size plus
/// this (a stride-0 view of a few bytes cannot ask for gigabytes).
const MAX_COPY_FLOOR: u64 = 1 << 20;
const MAX_COPY_FACTOR: u64 = 2;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &[u8]) -> Result<(Vec<Obj>, Id)> {
        let mut m = Machine::new("t", p, false, 0);
        let id = m.run()?;
        Ok((m.arena, id))
    }

    /// The object and memo caps follow the pickle's size: `n` bytes hold at most `n` objects and
    /// `n` memo entries (each opcode creating one takes a byte), so a small pickle cannot grow
    /// an arena or a memo beyond what it holds.
    #[test]
    fn objects_and_memo_entries_are_bounded_by_the_pickle_size() {
        let mut m = Machine::new("small.pkl", b"NNNN", false, 0);
        assert_eq!(m.max_objects, 4);
        for _ in 0..4 {
            m.alloc(Obj::None).unwrap();
        }
        let e = m.alloc(Obj::None).unwrap_err();
        assert_eq!(e.code(), "BadWeights");
        assert!(e.to_string().contains("small.pkl") && e.to_string().contains("more objects than a 4-byte pickle"), "{e}");
        for k in 0..4 {
            m.memoize(k * 1000, 0).unwrap();
        }
        m.memoize(0, 1).unwrap(); // an existing key is replaced
        let e = m.memoize(7, 0).unwrap_err();
        assert!(e.to_string().contains("more memo entries than a 4-byte pickle"), "{e}");
        assert_eq!(max_objects(usize::MAX), MAX_OBJECTS);
        // a pickle made of nothing but object-creating opcodes and memo entries stays within it
        let mut p = b"\x80\x02(".to_vec();
        for _ in 0..1000 {
            p.extend_from_slice(b"]\x94N\x94");
        }
        p.extend_from_slice(b"l.");
        let (arena, top) = run(&p).unwrap();
        assert!(matches!(&arena[top], Obj::List(l) if l.len() == 2000));
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
        let loaded = Loaded { file: "t", bytes: &bytes, arena: Vec::new(), top: 0, storages: HashMap::from([("0".to_string(), 0..4)]), copied: Default::default(), budget: None };
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
