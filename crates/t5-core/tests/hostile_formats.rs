//! Hostile weight files (issue 15): sizes, counts and offsets that once wrapped, truncated or
//! amplified are typed errors before anything large is allocated. Each crafted file is also kept
//! under `tests/corpus/<format>/` (named `<expected error code>-<what>.<ext>`) as a seed for the
//! fuzz targets; `corpus_files_are_typed_errors` replays them all. `write_corpus` (ignored)
//! regenerates them: `cargo test -p t5-core --test hostile_formats -- --ignored write_corpus`.

mod common;

use common::fixtures;
use std::path::PathBuf;
use t5_core::formats::gguf::{self, Value};
use t5_core::{T5Error, WeightStore};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

// ---------------------------------------------------------------------------------------------
// GGUF: a writer, to change metadata values (and their types) of a real file

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        Value::Array(a) => {
            out.extend(a.first().map_or(0, type_id).to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            a.iter().for_each(|x| put_value(out, x));
        }
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
    }
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

/// `bytes` (a GGUF file) rewritten with `edit` applied to its metadata, then `raw` (already encoded
/// key / value pairs, `raw_count` of them) appended to it; tensor infos and data as they were.
fn rewrite_gguf_raw(bytes: &[u8], edit: impl FnOnce(&mut Vec<(String, Value)>), raw: &[u8], raw_count: u64) -> Vec<u8> {
    let g = gguf::parse(bytes, "src").unwrap();
    let header = |meta: &[(String, Value)], extra: u64| {
        let mut out = b"GGUF".to_vec();
        out.extend(g.version.to_le_bytes());
        out.extend((g.tensors.len() as u64).to_le_bytes());
        out.extend((meta.len() as u64 + extra).to_le_bytes());
        for (k, v) in meta {
            put_value(&mut out, &Value::String(k.clone()));
            out.extend(type_id(v).to_le_bytes());
            put_value(&mut out, v);
        }
        out
    };
    let infos_start = header(&g.metadata, 0).len();
    assert_eq!(header(&g.metadata, 0), bytes[..infos_start], "the writer reproduces the original header");
    let mut meta = g.metadata.clone();
    edit(&mut meta);
    let mut out = header(&meta, raw_count);
    out.extend(raw);
    out.extend(&bytes[infos_start..infos_start + infos_len(bytes, infos_start, g.tensors.len())]);
    while out.len() % g.alignment != 0 {
        out.push(0);
    }
    out.extend(&bytes[g.data_start..]);
    out
}

fn rewrite_gguf(bytes: &[u8], edit: impl FnOnce(&mut Vec<(String, Value)>)) -> Vec<u8> {
    rewrite_gguf_raw(bytes, edit, &[], 0)
}

/// Length of `n` tensor infos starting at `at`.
fn infos_len(bytes: &[u8], at: usize, n: usize) -> usize {
    let u64_at = |p: usize| u64::from_le_bytes(bytes[p..p + 8].try_into().unwrap()) as usize;
    let mut p = at;
    for _ in 0..n {
        p += 8 + u64_at(p);
        let dims = u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
        p += 4 + 8 * dims + 4 + 8;
    }
    p - at
}

/// Set `key` (added when the file has none).
fn set(meta: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match meta.iter_mut().find(|(k, _)| k == key) {
        Some(kv) => kv.1 = v,
        None => meta.push((key.to_string(), v)),
    }
}

fn good_gguf() -> Vec<u8> {
    std::fs::read(fixtures().join("gguf/tiny-t5-q4_0.gguf")).unwrap()
}

/// The crafted GGUF files: (file name, bytes).
fn hostile_ggufs() -> Vec<(String, Vec<u8>)> {
    let good = good_gguf();
    let mut out = Vec::new();
    // t5.block_count 2^32 + 1: wrapped to 1 on wasm32 (and the model loaded)
    out.push(("BadConfig-block_count_2pow32_plus_1.gguf".into(), rewrite_gguf(&good, |m| set(m, "t5.block_count", Value::U64((1 << 32) + 1)))));
    // t5.block_count 1e6: cost 1 GiB and seconds before any tensor was checked
    out.push(("BadConfig-block_count_1e6.gguf".into(), rewrite_gguf(&good, |m| set(m, "t5.block_count", Value::U64(1_000_000)))));
    // sizes truncated to 32 bits: 2^32 + 64 read as 64 on wasm32
    out.push(("BadConfig-embedding_length_2pow32_plus_64.gguf".into(), rewrite_gguf(&good, |m| set(m, "t5.embedding_length", Value::U64((1 << 32) + 64)))));
    out.push(("BadConfig-head_count_huge.gguf".into(), rewrite_gguf(&good, |m| set(m, "t5.attention.head_count", Value::U64(u64::MAX)))));
    out.push(("BadConfig-decoder_block_count_huge.gguf".into(), rewrite_gguf(&good, |m| set(m, "t5.decoder_block_count", Value::I64(i64::MAX)))));
    // a key twice (the second would be ignored: which one is meant?)
    out.push(("BadWeights-duplicate_metadata_key.gguf".into(), rewrite_gguf(&good, |m| m.push(("t5.block_count".into(), Value::U32(1))))));
    out.push(("BadConfig-block_count_negative.gguf".into(), rewrite_gguf(&good, |m| set(m, "t5.block_count", Value::I32(-1)))));
    // a tensor of 2^30 f32 (4 GiB): its byte size wrapped to 0 on wasm32, passed the checks, and the build panicked
    let mut b = good.clone();
    let name = "enc.output_norm.weight";
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend(name.as_bytes());
    let at = b.windows(key.len()).position(|w| w == key.as_slice()).unwrap() + key.len();
    assert_eq!(u32::from_le_bytes(b[at..at + 4].try_into().unwrap()), 1, "1-D");
    b[at + 4..at + 12].copy_from_slice(&(1u64 << 30).to_le_bytes());
    out.push(("BadWeights-tensor_4GiB_wraps_on_wasm32.gguf".into(), b));
    // 2^61 f32 elements: the byte size overflows 64 bits
    let mut b = good.clone();
    b[at + 4..at + 12].copy_from_slice(&(1u64 << 62).to_le_bytes());
    out.push(("BadWeights-tensor_size_overflows_64_bits.gguf".into(), b));
    // one-byte metadata array elements decode to a 32-byte value each: 4M of them would take 128 MiB
    let n = 4u64 << 20;
    let mut raw = Vec::new();
    put_value(&mut raw, &Value::String("x.bomb".into()));
    raw.extend(9u32.to_le_bytes()); // array
    raw.extend(0u32.to_le_bytes()); // of u8
    raw.extend(n.to_le_bytes());
    raw.resize(raw.len() + n as usize, 0);
    out.push(("ModelTooLarge-metadata_array_amplification.gguf".into(), rewrite_gguf_raw(&good, |_| {}, &raw, 1)));
    out.push(("ModelTooLarge-metadata_24x_the_file.gguf".into(), u8_array_gguf(128 << 10)));
    out
}

/// The good file with one more metadata key: an array of `n` one-byte elements (each decodes to a
/// 32-byte value).
fn u8_array_gguf(n: u64) -> Vec<u8> {
    let mut raw = Vec::new();
    put_value(&mut raw, &Value::String("x.bytes".into()));
    raw.extend(9u32.to_le_bytes()); // array
    raw.extend(0u32.to_le_bytes()); // of u8
    raw.extend(n.to_le_bytes());
    raw.resize(raw.len() + n as usize, 0);
    rewrite_gguf_raw(&good_gguf(), |_| {}, &raw, 1)
}

/// Decoded metadata is bounded by the file's size (16× + 1 MiB), not only by the fixed 64 MiB: a
/// 170 KiB file whose metadata would decode to 4 MiB is refused before the array is allocated;
/// the same array in a file whose size justifies it loads.
#[test]
fn gguf_metadata_is_bounded_by_the_file_size() {
    assert_eq!(gguf::VALUE_BYTES, 32, "the amplification this test builds on (the same on every target)");
    assert_eq!(gguf::metadata_limit(0), gguf::METADATA_FLOOR);
    assert_eq!(gguf::metadata_limit(1 << 40), gguf::MAX_METADATA_BYTES);
    let small = u8_array_gguf(128 << 10);
    let limit = gguf::metadata_limit(small.len() as u64);
    assert!(limit < 32 * (128 << 10) && limit < gguf::MAX_METADATA_BYTES, "{limit}");
    let err = gguf::parse(&small, "small.gguf").unwrap_err();
    assert_eq!(err.code(), "ModelTooLarge", "{err}");
    assert!(err.to_string().contains("small.gguf") && err.to_string().contains(&format!("{}-byte file", small.len())), "{err}");
    // the same metadata in a file padded (after its tensor data) to 256 KiB + 4 MiB / 16 fits
    let mut padded = small.clone();
    padded.resize(small.len() + (256 << 10), 0);
    let g = gguf::parse(&padded, "padded.gguf").unwrap();
    assert!(g.metadata.iter().any(|(k, v)| k == "x.bytes" && matches!(v, Value::Array(a) if a.len() == 128 << 10)));
    // a few elements fit in any file (the floor)
    gguf::load("few.gguf", u8_array_gguf(1000)).unwrap();
}

#[test]
fn hostile_gguf_files_are_typed_errors() {
    // the writer itself reproduces a loadable file
    let same = rewrite_gguf(&good_gguf(), |_| {});
    assert_eq!(same, good_gguf());
    for (name, bytes) in hostile_ggufs() {
        let t = std::time::Instant::now();
        let err = gguf::load(&name, bytes).err().unwrap_or_else(|| panic!("{name}: loaded"));
        let want = name.split('-').next().unwrap();
        assert_eq!(err.code(), want, "{name}: {err}");
        eprintln!("{name}: {err} ({:?})", t.elapsed());
    }
}

// ---------------------------------------------------------------------------------------------
// pytorch_model.bin: stride-0 views (an index naming 20 shards of 627 bytes once took 3.8 GiB)

#[test]
fn stride_zero_expansion_is_bounded_by_the_file_and_the_memory_limit() {
    let big = std::fs::read(corpus().join("pickle/BadWeights-stride0_view_expands_one_float_to_64MiB.bin")).unwrap();
    assert!(big.len() < 1024);
    // every shard of such an index is refused before its copy is made
    let mut store = WeightStore::new();
    store.set_memory_limit(Some(4 << 30));
    for i in 0..20 {
        let err = store.add_file(&format!("pytorch_model-{i:05}.bin"), big.clone()).unwrap_err();
        assert_eq!(err.code(), "BadWeights", "{err}");
        assert!(err.to_string().contains("expand"), "{err}");
    }
    assert_eq!(store.resident_bytes(), 0);
    // a smaller expansion (512 KiB from 4 bytes) is within the file's bound: it loads without a
    // limit, and is a ModelTooLarge error before the copy when the memory limit leaves less
    let small = std::fs::read(fixtures().join("formats/stride0-512KiB.bin")).unwrap();
    let mut store = WeightStore::new();
    store.add_file("small.bin", small.clone()).unwrap();
    let t = store.get("shared.weight", &[128, 1024]).unwrap();
    assert!(t.data.iter().all(|&v| v == 1.5));
    let mut store = WeightStore::new();
    store.set_memory_limit(Some(t5_core::formats::MEMORY_RESERVE + (256 << 10)));
    let err = store.add_file("small.bin", small).unwrap_err();
    assert_eq!(err.code(), "ModelTooLarge", "{err}");
    assert_eq!(store.resident_bytes(), 0);
}

// ---------------------------------------------------------------------------------------------
// the build budget: files + the model built from them, from the store's index alone

#[test]
fn the_build_budget_counts_files_conversions_and_gguf_blocks() {
    use t5_core::formats::check_build_fits;
    use t5_core::{Cpu, ModelKind, WeightDtype, T5};
    let (cfg, _, store) = t5_core::hub::load_dir(fixtures().join("tiny-t5")).unwrap();
    let files = store.resident_bytes();
    for dtype in [WeightDtype::F32, WeightDtype::Q8] {
        let need = check_build_fits(&store, &cfg, true, true, dtype, None).unwrap();
        let model = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu, dtype).unwrap();
        // files + the linear weights the model holds (+ norms, bias tables, one f32 transient)
        assert!(need >= files + model.weight_bytes() as u64, "{dtype:?}: {need} < {files} + {}", model.weight_bytes());
        let err = check_build_fits(&store, &cfg, true, true, dtype, Some(need + t5_core::formats::MEMORY_RESERVE - 1)).unwrap_err();
        assert_eq!(err.code(), "ModelTooLarge", "{err}");
        check_build_fits(&store, &cfg, true, true, dtype, Some(need + t5_core::formats::MEMORY_RESERVE)).unwrap();
    }
    // a q4_0 GGUF: its blocks are kept (q4 with groups of 32), not counted as fp32
    let (cfg, _, store) = gguf::load("q4_0", good_gguf()).unwrap();
    let need = check_build_fits(&store, &cfg, true, true, WeightDtype::F32, None).unwrap();
    let model = T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    assert!(need >= store.resident_bytes() + model.weight_bytes() as u64);
    assert!(need < store.resident_bytes() + 2 * model.weight_bytes() as u64 + (1 << 20), "{need}");
    // a layer count far beyond the file's tensors costs nothing: counting stops at the first missing weight
    let mut huge = cfg.clone();
    huge.num_layers = usize::MAX / 2;
    check_build_fits(&store, &huge, true, true, WeightDtype::F32, Some(u64::MAX)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// the committed corpus

#[test]
#[ignore]
fn write_corpus() {
    let dir = corpus().join("gguf");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in hostile_ggufs() {
        // the amplification file is 4 MiB: kept out of the corpus (the test builds it)
        if bytes.len() < 1 << 20 {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// Load one corpus file by its format (the directory name).
fn load_corpus_file(format: &str, name: &str, bytes: Vec<u8>) -> Result<(), T5Error> {
    match format {
        "gguf" => gguf::load(name, bytes).map(|_| ()),
        "safetensors" | "pickle" => {
            let mut store = WeightStore::new();
            store.add_file(name, bytes)
        }
        "spiece" => t5_core::formats::spiece::SpModel::parse(&bytes).map(|_| ()),
        other => panic!("unknown corpus format {other}"),
    }
}

#[test]
fn corpus_files_are_typed_errors() {
    let mut seen = 0;
    for format in std::fs::read_dir(corpus()).unwrap() {
        let format = format.unwrap();
        if !format.file_type().unwrap().is_dir() {
            continue;
        }
        let fname = format.file_name().to_string_lossy().to_string();
        for f in std::fs::read_dir(format.path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().to_string();
            let want = name.split('-').next().unwrap().to_string();
            let err = load_corpus_file(&fname, &name, std::fs::read(f.path()).unwrap()).err().unwrap_or_else(|| panic!("{fname}/{name}: loaded"));
            assert_eq!(err.code(), want, "{fname}/{name}: {err}");
            seen += 1;
        }
    }
    assert!(seen >= 8, "only {seen} corpus files");
}
