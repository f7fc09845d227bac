//! Safetensors files streamed tensor by tensor (`weights::ShardStream`): in pieces of any size the
//! model is bit-identical to the one loaded from whole files, for every storage form (fp32, fp16,
//! bf16, q8, q4), single files and shards, head checkpoints; the weights converted while streaming
//! are reported as fallbacks the same way; the memory check speaks before any tensor data is read;
//! broken streams are typed errors.

mod common;

use common::fixtures;
use std::path::PathBuf;
use t5_core::config::T5Config;
use t5_core::hub::{load_dir, weight_files};
use t5_core::formats::stream::BATCH_BYTES;
use t5_core::formats::budget::stored_weight_bytes;
use t5_core::formats::{check_model_fits, estimate_model_bytes, ShardStream, MEMORY_RESERVE};
use t5_core::{Batch, Cpu, ModelKind, T5Error, WeightDtype, WeightStore, T5};

/// Stream every weight file of `dir` in pieces of `piece` bytes.
fn stream_dir(dir: &str, piece: usize, dtype: WeightDtype, limit: Option<u64>) -> Result<WeightStore, T5Error> {
    stream_dir_with(dir, piece, dtype, limit, 1, BATCH_BYTES)
}

/// [`stream_dir`], each batch of `batch` bytes of rows converted on `threads` threads.
fn stream_dir_with(dir: &str, piece: usize, dtype: WeightDtype, limit: Option<u64>, threads: usize, batch: u64) -> Result<WeightStore, T5Error> {
    let dir = fixtures().join(dir);
    let mut store = WeightStore::new();
    for f in weight_files(&dir)? {
        let bytes = std::fs::read(dir.join(&f)).unwrap();
        let mut s = ShardStream::new(&f, Some(bytes.len() as u64), dtype, limit).with_threads(threads).with_batch_bytes(batch);
        for c in bytes.chunks(piece) {
            s.push(&mut store, c)?;
        }
        s.finish(&mut store)?;
    }
    Ok(store)
}

fn input(vocab: usize) -> (Batch, Vec<u32>) {
    let ids: Vec<u32> = (0..14).map(|i| ((i * 37 + 5) % vocab) as u32).collect();
    let mut mask = vec![1u32; 14];
    mask[12] = 0;
    mask[13] = 0;
    (Batch::new(ids, Some(mask), 2, 7).unwrap(), vec![0, 3, 9, 0, 4, 1])
}

#[test]
fn streamed_models_are_bit_identical_to_whole_file_loads() {
    let dtypes = [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4];
    for dir in ["tiny-t5", "tiny-t5-q128", "tiny-t5-v1_1", "tiny-t5-v1_1-sharded", "tiny-t5-f16"] {
        let (cfg, _, whole) = load_dir(fixtures().join(dir)).unwrap();
        let (batch, dec) = input(cfg.vocab_size);
        for (i, &dtype) in dtypes.iter().enumerate() {
            let want = T5::load_with_dtype(cfg.clone(), &whole, ModelKind::ConditionalGeneration, Cpu, dtype).unwrap();
            let want_logits = want.forward(&batch, Some(&dec), None, None).unwrap().logits.unwrap();
            // pieces of 1 byte (every boundary), a prime, and larger than most tensors; rows converted in
            // batches of one row, of a few rows and of whole tensors, on 1 to 4 threads
            let piece = [1, 4099, 1 << 20, 7, 65536][i];
            let (threads, batch_bytes) = [(3, BATCH_BYTES), (1, BATCH_BYTES), (3, 1), (2, 4096), (4, 777)][i];
            let store = stream_dir_with(dir, piece, dtype, Some(1 << 32), threads, batch_bytes).unwrap();
            let got = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu, dtype).unwrap();
            let logits = got.forward(&batch, Some(&dec), None, None).unwrap().logits.unwrap();
            assert_eq!(logits.shape, want_logits.shape, "{dir} {dtype:?}");
            let same = logits.data.iter().zip(&want_logits.data).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{dir} {dtype:?}: streamed logits differ from the whole-file load");
            assert_eq!(got.weight_fallbacks(), want.weight_fallbacks(), "{dir} {dtype:?}: fallbacks");
            assert_eq!(got.weight_bytes(), want.weight_bytes(), "{dir} {dtype:?}: resident weight bytes");
            if matches!(dtype, WeightDtype::Q8 | WeightDtype::Q4) && dir != "tiny-t5-f16" {
                // the converted weights are the only copy: the store holds far less than the files
                let file_bytes: u64 = weight_files(fixtures().join(dir)).unwrap().iter().map(|f| std::fs::metadata(fixtures().join(dir).join(f)).unwrap().len()).sum();
                let held = stream_dir(dir, 65536, dtype, None).unwrap().resident_bytes();
                assert!(held * 10 < file_bytes * 6, "{dir} {dtype:?}: {held} bytes held for {file_bytes} bytes of files");
            }
        }
    }
}

/// Batches whose rows do not divide among the threads: 5 rows a batch (2560 bytes of 128-value f32 rows) on 4
/// threads are parts of 2, 2, 1 and 0 rows, and each tensor's last batch is shorter still; every part writes its
/// rows of the weight's buffers in place, and the model is bit-identical to the whole-file load.
#[test]
fn uneven_batches_on_more_threads_than_rows() {
    let dir = "tiny-t5-q128";
    let (cfg, _, whole) = load_dir(fixtures().join(dir)).unwrap();
    let (batch, dec) = input(cfg.vocab_size);
    for dtype in [WeightDtype::F32, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4] {
        let want = T5::load_with_dtype(cfg.clone(), &whole, ModelKind::ConditionalGeneration, Cpu, dtype).unwrap();
        let want_logits = want.forward(&batch, Some(&dec), None, None).unwrap().logits.unwrap();
        for (threads, rows) in [(4, 5), (3, 1), (8, 3)] {
            let store = stream_dir_with(dir, 3001, dtype, Some(1 << 32), threads, rows * 512).unwrap();
            let got = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu, dtype).unwrap();
            let logits = got.forward(&batch, Some(&dec), None, None).unwrap().logits.unwrap();
            let same = logits.data.iter().zip(&want_logits.data).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{dtype:?}, {threads} threads, {rows} rows a batch: streamed logits differ");
        }
    }
}

#[test]
fn head_checkpoints_stream() {
    for dir in ["heads/seq-cls", "heads/qa", "heads/token-cls"] {
        let (cfg, _, whole) = load_dir(fixtures().join(dir)).unwrap();
        let task = t5_core::heads::Task::from_config(&cfg).unwrap();
        let store = stream_dir(dir, 333, WeightDtype::Q8, None).unwrap();
        let a = t5_core::heads::Head::<Cpu>::load(task, &cfg, &whole, &Cpu).unwrap().is_some();
        let b = t5_core::heads::Head::<Cpu>::load(task, &cfg, &store, &Cpu).unwrap().is_some();
        assert_eq!(a, b, "{dir}");
        T5::load_with_dtype(cfg.clone(), &store, task.base_kind(), Cpu, WeightDtype::Q8).unwrap();
    }
}

/// A safetensors header (no data) for tensors of the given shapes, all f32.
fn header_only(tensors: &[(&str, Vec<usize>)]) -> (Vec<u8>, u64) {
    let mut at = 0u64;
    let mut obj = serde_json::Map::new();
    for (name, shape) in tensors {
        let n: u64 = shape.iter().map(|&d| d as u64).product::<u64>() * 4;
        obj.insert(name.to_string(), serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [at, at + n]}));
        at += n;
    }
    let text = serde_json::Value::Object(obj).to_string();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    let size = out.len() as u64 + at;
    (out, size)
}

/// Under a memory limit that leaves room for one row's conversion but not a whole batch's, the batch shrinks
/// (down to one row) instead of the load being refused; a limit one byte tighter than one row is refused.
#[test]
fn a_tight_limit_shrinks_the_conversion_batch() {
    let name = "encoder.block.0.layer.1.DenseReluDense.wi.weight";
    let (n, k) = (4096u64, 4096u64); // 64 MiB of fp32: a default batch (4 MiB of rows) takes 16 MiB to convert
    let (head, size) = header_only(&[(name, vec![n as usize, k as usize])]);
    let one_row = MEMORY_RESERVE + stored_weight_bytes(name, n, k, WeightDtype::Q8) + k * 16;
    let mut s = ShardStream::new("model.safetensors", Some(size), WeightDtype::Q8, Some(one_row));
    s.push(&mut WeightStore::new(), &head).unwrap();
    assert!(s.header_done());
    let e = ShardStream::new("model.safetensors", Some(size), WeightDtype::Q8, Some(one_row - 1)).push(&mut WeightStore::new(), &head).unwrap_err();
    assert_eq!(e.code(), "ModelTooLarge", "{e}");
    // (the stored values do not depend on the batch: streamed_models_are_bit_identical_to_whole_file_loads)
}

/// t5-3b's shapes (d_model 1024, d_ff 16384, 24 + 24 layers, 32 heads of 128): 11.4 GB in fp32.
fn t5_3b_like() -> T5Config {
    T5Config::from_json(r#"{"d_model":1024,"d_ff":16384,"d_kv":128,"num_heads":32,"num_layers":24,"vocab_size":32128,"feed_forward_proj":"relu"}"#).unwrap()
}

#[test]
fn too_large_is_said_from_the_header_before_any_data() {
    // a 6.0 GB fp32 file: 2 tensors of 32128 x 24576 (header only: not one data byte is pushed)
    let (head, size) = header_only(&[("shared.weight", vec![32128, 24576]), ("encoder.block.0.layer.1.DenseReluDense.wi.weight", vec![24576, 32128])]);
    assert!(size > 6_000_000_000);
    let mut store = WeightStore::new();
    let mut s = ShardStream::new("model.safetensors", Some(size), WeightDtype::F32, Some(1 << 32));
    let e = s.push(&mut store, &head).unwrap_err();
    assert_eq!(e.code(), "ModelTooLarge", "{e}");
    assert!(e.to_string().contains("model.safetensors") && e.to_string().contains("q8"), "{e}");
    // as q4 the same file fits: 0.8 GiB, converted row by row as the bytes arrive
    let mut store = WeightStore::new();
    let mut s = ShardStream::new("model.safetensors", Some(size), WeightDtype::Q4, Some(1 << 32));
    s.push(&mut store, &head).unwrap();
    assert!(s.header_done());
    // and the config alone says it for a whole model
    let cfg = t5_3b_like();
    let e = check_model_fits(&cfg, true, false, WeightDtype::F32, Some(1 << 32)).unwrap_err();
    assert_eq!(e.code(), "ModelTooLarge");
    assert!(e.to_string().contains("\"q8\"") && e.to_string().contains("\"q4\""), "{e}");
    let fp32 = estimate_model_bytes(&cfg, true, false, WeightDtype::F32);
    assert!((11_000_000_000..12_000_000_000).contains(&fp32), "{fp32}");
    let q8 = check_model_fits(&cfg, true, false, WeightDtype::Q8, Some(1 << 32)).unwrap();
    assert!(q8 * 3 < fp32 && q8 * 5 > fp32, "{q8}");
    // no limit natively
    check_model_fits(&cfg, true, false, WeightDtype::F32, None).unwrap();

    // the first shard of a sharded checkpoint: small itself, but the config says the model is too large
    let (head, size) = header_only(&[("encoder.final_layer_norm.weight", vec![1024])]);
    let shard = || ShardStream::new("model-00001-of-00009.safetensors", Some(size), WeightDtype::F32, Some(1 << 32));
    let e = shard().with_config_check(&cfg, true).push(&mut WeightStore::new(), &head).unwrap_err();
    assert_eq!(e.code(), "ModelTooLarge", "{e}");
    // as q8 it fits; an encoder-only model (no decoder) is still too large in fp32 (5.0 GB) but fits in bf16
    let mut s = ShardStream::new("a", Some(size), WeightDtype::Q8, Some(1 << 32)).with_config_check(&cfg, true);
    s.push(&mut WeightStore::new(), &head).unwrap();
    assert_eq!(shard().with_config_check(&cfg, false).push(&mut WeightStore::new(), &head).unwrap_err().code(), "ModelTooLarge");
    let mut s = ShardStream::new("a", Some(size), WeightDtype::BF16, Some(1 << 32)).with_config_check(&cfg, false);
    s.push(&mut WeightStore::new(), &head).unwrap();
    let e = ShardStream::new("a", Some(size), WeightDtype::BF16, Some(1 << 32)).with_config_check(&cfg, true).push(&mut WeightStore::new(), &head).unwrap_err();
    assert_eq!(e.code(), "ModelTooLarge", "{e}");
    // a pre-quantized checkpoint keeps its stored forms: the config (read as fp32) does not speak, the header does
    let (head, size) = header_only(&[("shared.weight.qweight", vec![16, 16])]);
    let mut s = ShardStream::new("model.safetensors", Some(size), WeightDtype::F32, Some(1 << 32)).with_config_check(&cfg, true);
    s.push(&mut WeightStore::new(), &head).unwrap();
}

#[test]
fn the_estimate_matches_what_the_model_holds() {
    for (dir, dtype) in [("tiny-t5-q128", WeightDtype::Q4), ("tiny-t5-v1_1", WeightDtype::Q8), ("tiny-t5", WeightDtype::F32)] {
        let (cfg, _, store) = load_dir(fixtures().join(dir)).unwrap();
        let lm_head = store.contains("lm_head.weight");
        let m = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu, dtype).unwrap();
        let est = estimate_model_bytes(&cfg, true, lm_head, dtype);
        // the estimate adds the norms and position biases to the linear weights the model counts
        assert!(est as usize >= m.weight_bytes() && (est as usize) < m.weight_bytes() + 64 * 1024, "{dir}: {est} vs {}", m.weight_bytes());
    }
}

#[test]
fn broken_streams_are_typed_errors() {
    let bytes = std::fs::read(fixtures().join("tiny-t5/model.safetensors")).unwrap();
    let run = |data: &[u8], size: Option<u64>| -> Result<(), T5Error> {
        let mut store = WeightStore::new();
        let mut s = ShardStream::new("model.safetensors", size, WeightDtype::Q8, None);
        for c in data.chunks(1000) {
            s.push(&mut store, c)?;
        }
        s.finish(&mut store)
    };
    run(&bytes, Some(bytes.len() as u64)).unwrap();
    run(&bytes, None).unwrap();
    for (what, data, size) in [
        ("truncated in a tensor", &bytes[..bytes.len() - 10], None),
        ("truncated in the header", &bytes[..20], None),
        ("size announced larger", &bytes[..], Some(bytes.len() as u64 + 1)),
        ("size announced smaller", &bytes[..], Some(bytes.len() as u64 - 1)),
        ("empty", &bytes[..0], None),
    ] {
        let e = run(data, size).unwrap_err();
        assert_eq!(e.code(), "BadWeights", "{what}: {e}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(run(&extra, None).unwrap_err().code(), "BadWeights");
    let mut bad = bytes.clone();
    bad[8] = b'[';
    assert_eq!(run(&bad, None).unwrap_err().code(), "BadWeights");
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(run(&huge, None).unwrap_err().code(), "BadWeights");
    // the same file twice: duplicate tensors, said from the second header
    let mut store = WeightStore::new();
    for _ in 0..2 {
        let mut s = ShardStream::new("model.safetensors", None, WeightDtype::Q8, None);
        let r = s.push(&mut store, &bytes).and_then(|_| s.finish(&mut store));
        if store.names().len() > 0 && r.is_err() {
            assert_eq!(r.unwrap_err().code(), "BadWeights");
        }
    }
    // a tensor whose offsets disagree with its shape
    let (mut head, _) = header_only(&[("a", vec![2, 3])]);
    let text = String::from_utf8(head[8..].to_vec()).unwrap().replace("[0,24]", "[0,20]");
    head = (text.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(text.as_bytes());
    assert_eq!(run(&head, None).unwrap_err().code(), "BadWeights");
}

/// Manual check on a large checkpoint (docs/development.md "Models larger than 4 GiB"): `T5_BIG_DIR=<dir> cargo test --release
/// -p t5-core --test streaming -- --ignored`. Streams the file as q8 in 8 MiB pieces and loads it whole as q8:
/// identical logits; writes them to `<dir>/native-q8-logits.json` for `test/runtimes/large-model.mjs` to compare
/// with the wasm build.
#[test]
#[ignore]
fn big_checkpoint_streams_like_whole_file() {
    let Ok(dir) = std::env::var("T5_BIG_DIR") else { return };
    let dir = PathBuf::from(dir);
    let cfg = T5Config::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let batch = Batch::new(vec![37, 1000, 5, 8, 1], None, 1, 5).unwrap();
    let dec = [0u32, 5, 9];
    let t0 = std::time::Instant::now();
    let streamed = {
        use std::io::Read;
        let mut f = std::fs::File::open(dir.join("model.safetensors")).unwrap();
        let size = f.metadata().unwrap().len();
        let mut store = WeightStore::new();
        let mut s = ShardStream::new("model.safetensors", Some(size), WeightDtype::Q8, Some(1 << 32));
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.push(&mut store, &buf[..n]).unwrap();
        }
        s.finish(&mut store).unwrap();
        let m = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu, WeightDtype::Q8).unwrap();
        m.forward(&batch, Some(&dec), None, None).unwrap().logits.unwrap()
    };
    eprintln!("streamed q8: {:.1} s", t0.elapsed().as_secs_f64());
    let t0 = std::time::Instant::now();
    let (_, _, whole) = load_dir(&dir).unwrap();
    let m = T5::load_with_dtype(cfg, &whole, ModelKind::ConditionalGeneration, Cpu, WeightDtype::Q8).unwrap();
    drop(whole);
    let want = m.forward(&batch, Some(&dec), None, None).unwrap().logits.unwrap();
    eprintln!("whole-file q8: {:.1} s", t0.elapsed().as_secs_f64());
    assert!(streamed.data.iter().zip(&want.data).all(|(a, b)| a.to_bits() == b.to_bits()), "streamed logits differ");
    std::fs::write(dir.join("native-q8-logits.json"), serde_json::json!({"shape": want.shape, "data": want.data}).to_string()).unwrap();
}

/// A pre-quantized file (`t5-bench quantize`'s form) streamed in pieces of any size: the model is bit-identical
/// to the whole-file load of the same bytes, and each weight's codes are held once: the streamed store hands
/// them to the model (moved, not copied), so once the model is built the store keeps only the small tensors
/// (norms, position biases), where a whole-file store still holds the file. A file missing a part is the same
/// typed error streamed as whole.
#[test]
fn prequantized_files_stream_and_hand_over_their_codes() {
    let (cfg, _, store) = load_dir(fixtures().join("tiny-t5-q128")).unwrap();
    let (batch, dec) = input(cfg.vocab_size);
    let stream = |bytes: &[u8], piece: usize| -> Result<WeightStore, T5Error> {
        let mut s = WeightStore::new();
        let mut st = ShardStream::new("model.safetensors", Some(bytes.len() as u64), WeightDtype::F32, Some(1 << 32));
        for c in bytes.chunks(piece) {
            st.push(&mut s, c)?;
        }
        st.finish(&mut s)?;
        Ok(s)
    };
    for dtype in [WeightDtype::Q4, WeightDtype::Q8] {
        let (bytes, _) = t5_core::formats::safetensors::quantize_checkpoint(&store, dtype).unwrap();
        let whole = WeightStore::from_shards(vec![("model.safetensors".into(), bytes.clone())]).unwrap();
        let want = T5::load(cfg.clone(), &whole, ModelKind::ConditionalGeneration, Cpu).unwrap();
        let want_logits = want.forward(&batch, Some(&dec), None, None).unwrap().logits.unwrap();
        for piece in [1, 4099, 1 << 20] {
            let streamed = stream(&bytes, piece).unwrap();
            let before = streamed.resident_bytes();
            assert!(before <= bytes.len() as u64, "{dtype:?}: the store holds {before} bytes for a {}-byte file", bytes.len());
            let got = T5::load(cfg.clone(), &streamed, ModelKind::ConditionalGeneration, Cpu).unwrap();
            let logits = got.forward(&batch, Some(&dec), None, None).unwrap().logits.unwrap();
            assert!(logits.data.iter().zip(&want_logits.data).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype:?} piece {piece}: logits");
            assert_eq!(got.weight_bytes(), want.weight_bytes(), "{dtype:?}");
            assert!(got.weight_fallbacks().is_empty() && want.weight_fallbacks().is_empty(), "{dtype:?}: fallbacks");
            let (left, whole_left) = (streamed.resident_bytes(), whole.resident_bytes());
            assert!(left * 10 < got.weight_bytes() as u64, "{dtype:?}: {left} bytes still in the store for {} in the model", got.weight_bytes());
            assert!(whole_left >= bytes.len() as u64, "{dtype:?}: a whole-file store keeps its file");
        }
    }
    // one part missing: the stream leaves the weight unassembled, and loading names the tensor
    let (bytes, _) = t5_core::formats::safetensors::quantize_checkpoint(&store, WeightDtype::Q4).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<_> = st.tensors().into_iter().filter(|(n, _)| n != "encoder.block.0.layer.0.SelfAttention.q.weight.zeros").collect();
    let cut = safetensors::serialize(views, None).unwrap();
    let err = T5::load(cfg.clone(), &stream(&cut, 777).unwrap(), ModelKind::ConditionalGeneration, Cpu).err().expect("error");
    assert_eq!(err.code(), "MissingTensor", "{err}");
}
