//! Checkpoints as users have them: one `model.safetensors`, sharded safetensors, and old
//! `pytorch_model.bin` files (torch.save's zip format and the legacy format) read by the restricted
//! unpickler; all must give the same logits, and hostile pickles must be refused without running.
//! Fixtures: `scripts/make_format_fixtures.py` (test/fixtures/formats/).

use serde_json::Value;
use std::path::PathBuf;
mod common;

use common::{assert_close_tensor, fixtures, Oracle};
use t5_core::hub::load_dir;
use t5_core::formats::pickle::{read_torch_checkpoint, TensorBytes};
use t5_core::{Cpu, ModelKind, Tensor, WeightStore, T5};

fn formats() -> PathBuf {
    fixtures().join("formats")
}

fn oracle() -> Oracle {
    Oracle::load(fixtures().join("oracle"), "tiny-t5-f16")
}

/// Logits of the oracle's inputs and decoder ids with the model of `store`.
fn logits(cfg: t5_core::T5Config, store: &WeightStore) -> Tensor {
    let o = oracle();
    let (input, dec) = (o.input(), o.rows("decoder_input_ids").concat());
    let m = T5::load(cfg, store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    m.forward(&input, Some(&dec), None, None).unwrap().logits.unwrap()
}

fn dir_logits(dir: PathBuf) -> Tensor {
    let (cfg, _, store) = load_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    logits(cfg, &store)
}

fn check_oracle(what: &str, ours: &Tensor) {
    let o = oracle();
    assert_close_tensor(&format!("{what}: logits"), ours, &o.tensor("logits"), o.tolerance(&["fp64_diff", "logits"]));
}

#[test]
fn all_layouts_give_identical_logits() {
    let sharded = dir_logits(fixtures().join("tiny-t5-f16"));
    check_oracle("sharded safetensors", &sharded);
    for d in ["tiny-t5-f16-bin", "tiny-t5-f16-legacy"] {
        let got = dir_logits(formats().join(d));
        check_oracle(d, &got);
        assert_eq!(got.data, sharded.data, "{d}: logits differ from the sharded safetensors checkpoint");
    }
    // converted to one model.safetensors: a Hub directory with a single file
    for d in ["tiny-t5-f16-bin", "tiny-t5-f16-legacy"] {
        let (cfg, _, store) = load_dir(formats().join(d)).unwrap();
        let bytes = store.to_safetensors(!cfg.tie_word_embeddings).unwrap();
        let tmp = std::env::temp_dir().join(format!("t5-web-formats-{}-{d}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        for f in ["config.json", "generation_config.json"] {
            std::fs::copy(formats().join(d).join(f), tmp.join(f)).unwrap();
        }
        std::fs::write(tmp.join("model.safetensors"), &bytes).unwrap();
        let got = dir_logits(tmp.clone());
        std::fs::remove_dir_all(&tmp).unwrap();
        assert_eq!(got.data, sharded.data, "{d} converted to model.safetensors: logits differ");
        // tied names written once, dtype kept
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
        assert!(names.contains(&"shared.weight".to_string()));
        for tied in ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"] {
            assert!(!names.iter().any(|n| n == tied), "{tied} should be deduplicated");
        }
        for (name, v) in st.tensors() {
            assert_eq!(Some(v.dtype()), store.dtype(&name), "{name}: dtype changed"); // f16, and wo kept f32 by transformers
        }
        assert!(bytes.len() < 2_200_000, "{} bytes: embeddings written more than once?", bytes.len());
    }
    // sharded safetensors → one file
    let (cfg, _, store) = load_dir(fixtures().join("tiny-t5-f16")).unwrap();
    let one = store.to_safetensors(!cfg.tie_word_embeddings).unwrap();
    let mut single = WeightStore::new();
    single.add_file("model.safetensors", one).unwrap();
    assert_eq!(logits(cfg, &single).data, sharded.data);
}

#[test]
fn untied_lm_head_is_kept_on_conversion() {
    let (cfg, _, store) = load_dir(formats().join("tiny-t5-f16-bin")).unwrap();
    let bytes = store.to_safetensors(true).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.tensor("lm_head.weight").is_ok());
    let mut s = WeightStore::new();
    s.add_file("model.safetensors", bytes).unwrap();
    check_oracle("lm_head kept", &logits(cfg, &s));
}

fn f64s(dtype: safetensors::Dtype, b: &[u8]) -> Vec<f64> {
    use safetensors::Dtype::*;
    match dtype {
        F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
        BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
        I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tensors_rebuilt_with_dtypes_strides_and_offsets() {
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(formats().join("tensors.json")).unwrap()).unwrap();
    let spec = spec.as_object().unwrap();
    for f in ["tensors.bin", "tensors-legacy.bin", "tensors-plain.pkl"] {
        let bytes = std::fs::read(formats().join(f)).unwrap();
        let got = read_torch_checkpoint(&bytes, f).unwrap();
        let mut names: Vec<&str> = got.iter().map(|t| t.name.as_str()).collect();
        names.sort();
        assert_eq!(names, spec.keys().map(String::as_str).collect::<Vec<_>>(), "{f}: names");
        assert_eq!(got[0].name, "f32", "{f}: file order");
        for t in &got {
            let want = &spec[&t.name];
            let dtype = match want["dtype"].as_str().unwrap() {
                "float32" => safetensors::Dtype::F32,
                "float16" => safetensors::Dtype::F16,
                "bfloat16" => safetensors::Dtype::BF16,
                "float64" => safetensors::Dtype::F64,
                "int64" => safetensors::Dtype::I64,
                other => panic!("{other}"),
            };
            assert_eq!(t.dtype, dtype, "{f} {}", t.name);
            let shape: Vec<usize> = want["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert_eq!(t.shape, shape, "{f} {}", t.name);
            let raw = match &t.data {
                TensorBytes::File(r) => &bytes[r.clone()],
                TensorBytes::Owned(v) => v.as_slice(),
            };
            let values: Vec<f64> = want["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let ours = f64s(dtype, raw);
            assert_eq!(ours.len(), values.len(), "{f} {}", t.name);
            // serde_json's float parsing may be off by an ulp of f64; the values are f32 or narrower, or f64 from randn
            for (a, b) in ours.iter().zip(&values) {
                assert!((a - b).abs() <= 1e-14 * b.abs().max(1.0), "{f} {}: {a} vs {b}", t.name);
            }
        }
        // the store reads them as f32; int64 is a typed error
        let mut store = WeightStore::new();
        store.add_file(f, bytes.clone()).unwrap();
        let tr = store.get("transposed", &[4, 3]).unwrap();
        let base = store.get("f32", &[3, 4]).unwrap();
        for i in 0..3 {
            for j in 0..4 {
                assert_eq!(tr.data[j * 3 + i], base.data[i * 4 + j]);
            }
        }
        assert_eq!(store.get("int64", &[2, 3]).unwrap_err().code(), "UnsupportedDtype");
        assert_eq!(store.get("scalar", &[]).unwrap().data, vec![2.5]);
    }
}

fn marker() -> PathBuf {
    PathBuf::from(std::fs::read_to_string(formats().join("evil-marker.txt")).unwrap().trim())
}

#[test]
fn malicious_pickles_are_refused_not_run() {
    let _ = std::fs::remove_file(marker());
    for (f, needle) in [("evil-system.bin", "posix.system"), ("evil-eval-legacy.bin", "builtin__.eval"), ("evil-newobj.pkl", "")] {
        let bytes = std::fs::read(formats().join(f)).unwrap();
        let e = read_torch_checkpoint(&bytes, f).unwrap_err();
        assert_eq!(e.code(), "BadWeights", "{f}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(f), "{msg}");
        if !needle.is_empty() {
            assert!(msg.contains(needle) && msg.contains("refusing global"), "{msg}");
        }
        let mut store = WeightStore::new();
        assert_eq!(store.add_pytorch(f, bytes).unwrap_err().code(), "BadWeights");
    }
    assert!(!marker().exists(), "a pickle payload ran");
    // through the directory loader
    let tmp = std::env::temp_dir().join(format!("t5-web-evil-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(formats().join("tiny-t5-f16-bin/config.json"), tmp.join("config.json")).unwrap();
    std::fs::copy(formats().join("evil-system.bin"), tmp.join("pytorch_model.bin")).unwrap();
    let e = load_dir(&tmp).err().unwrap();
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(e.code(), "BadWeights");
    assert!(e.to_string().contains("pytorch_model.bin"), "{e}");
    assert!(!marker().exists());
}

#[test]
fn corrupt_checkpoints_are_typed_errors_never_panics() {
    for f in ["tensors.bin", "tensors-legacy.bin", "tensors-plain.pkl"] {
        let bytes = std::fs::read(formats().join(f)).unwrap();
        // truncations
        for cut in (0..bytes.len()).step_by(37) {
            let r = read_torch_checkpoint(&bytes[..cut], f);
            assert!(r.is_err(), "{f} cut at {cut} read fine");
            assert_eq!(r.unwrap_err().code(), "BadWeights");
        }
        // byte flips everywhere in the first 2 KiB (the pickles; the zip directory)
        for at in (0..bytes.len().min(2048)).chain(bytes.len().saturating_sub(600)..bytes.len()) {
            for v in [0x00u8, 0xff, b'(', b'Q', b'R', 0x8a] {
                let mut b = bytes.clone();
                b[at] = v;
                let mut store = WeightStore::new();
                if let Err(e) = store.add_pytorch(f, b) {
                    assert!(matches!(e.code(), "BadWeights"), "{f} byte {at} = {v}: {e}");
                }
            }
        }
    }
    assert_eq!(read_torch_checkpoint(b"not a checkpoint", "x").unwrap_err().code(), "BadWeights");
    assert_eq!(read_torch_checkpoint(b"", "x").unwrap_err().code(), "BadWeights");
}

#[test]
fn missing_weights_message_names_every_layout() {
    let tmp = std::env::temp_dir().join(format!("t5-web-noweights-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(formats().join("tiny-t5-f16-bin/config.json"), tmp.join("config.json")).unwrap();
    let e = load_dir(&tmp).err().unwrap();
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(e.code(), "MissingFile");
    assert!(e.to_string().contains("pytorch_model.bin"), "{e}");
}

#[test]
fn safetensors_whose_header_length_looks_like_a_pickle_still_reads_as_safetensors() {
    // a header length whose low byte is 0x80 (pickle's PROTO opcode)
    let data = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    let bytes = (0..400)
        .map(|pad| {
            let meta = std::collections::HashMap::from([("pad".to_string(), "x".repeat(pad))]);
            safetensors::tensor::serialize([("t", view.clone())], Some(meta)).unwrap()
        })
        .find(|b| b[0] == 0x80)
        .expect("some padding gives a header length ending in 0x80");
    let mut store = WeightStore::new();
    store.add_file("model.safetensors", bytes).unwrap();
    assert_eq!(store.get("t", &[2]).unwrap().data, vec![1.0, 2.0]);
}

#[test]
fn pytorch_bin_index_shards() {
    let tmp = std::env::temp_dir().join(format!("t5-web-binshards-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let src = formats().join("tiny-t5-f16-bin");
    std::fs::copy(src.join("config.json"), tmp.join("config.json")).unwrap();
    std::fs::copy(src.join("pytorch_model.bin"), tmp.join("pytorch_model-00001-of-00001.bin")).unwrap();
    std::fs::write(tmp.join("pytorch_model.bin.index.json"), r#"{"metadata": {}, "weight_map": {"shared.weight": "pytorch_model-00001-of-00001.bin"}}"#).unwrap();
    let got = dir_logits(tmp.clone());
    check_oracle("pytorch_model.bin.index.json", &got);
    // the same tensors in two shards: a typed error
    std::fs::copy(src.join("pytorch_model.bin"), tmp.join("pytorch_model-00002-of-00002.bin")).unwrap();
    std::fs::write(
        tmp.join("pytorch_model.bin.index.json"),
        r#"{"weight_map": {"shared.weight": "pytorch_model-00001-of-00001.bin", "lm_head.weight": "pytorch_model-00002-of-00002.bin"}}"#,
    )
    .unwrap();
    let e = load_dir(&tmp).err().unwrap();
    assert!(e.code() == "BadWeights" && e.to_string().contains("appears in two shards"), "{e}");
    // a shard outside the directory
    std::fs::write(tmp.join("pytorch_model.bin.index.json"), r#"{"weight_map": {"shared.weight": "../pytorch_model.bin"}}"#).unwrap();
    assert_eq!(load_dir(&tmp).err().unwrap().code(), "BadWeights");
    std::fs::remove_dir_all(&tmp).unwrap();
}
