//! GGUF checkpoints (llama.cpp's T5 layout, written by the `gguf` package in
//! `scripts/make_gguf_fixtures.py`) against transformers run on the same files' dequantized weights:
//! logits and encoder states within 1e-4 + 4 × fp64 spread for F32, F16, BF16, Q8_0, Q4_0, Q4_1,
//! greedy ids identical; the conversion of the quantized blocks is lossless; the F32 and BF16
//! files give exactly the safetensors model's logits; malformed files are typed errors.

use std::path::PathBuf;
mod common;

use common::{assert_close, fixtures, Oracle};
use t5_core::generate::greedy;
use t5_core::formats::gguf::{self, GgmlType};
use t5_core::hub::load_dir;
use t5_core::QWeight;
use t5_core::{Batch, Cpu, ModelKind, T5Error, Tensor, WeightStore, T5};

fn dir() -> PathBuf {
    fixtures().join("gguf")
}

fn oracle() -> Oracle {
    Oracle::load(dir(), "oracle")
}

/// The GGUF types the oracle covers.
fn types(o: &Oracle) -> Vec<String> {
    o.json["types"].as_object().unwrap().keys().cloned().collect()
}

fn file(ty: &str) -> PathBuf {
    dir().join(format!("tiny-t5-{ty}.gguf"))
}

#[test]
fn config_comes_from_the_gguf_metadata() {
    let (want, _, _) = load_dir(dir().join("tiny-t5-gguf")).unwrap();
    for ty in types(&oracle()) {
        let (cfg, gen, _) = load_dir(file(&ty)).unwrap();
        assert_eq!(
            (cfg.vocab_size, cfg.d_model, cfg.d_kv, cfg.d_ff, cfg.num_layers, cfg.decoder_layers(), cfg.num_heads),
            (want.vocab_size, want.d_model, want.d_kv, want.d_ff, want.num_layers, want.decoder_layers(), want.num_heads),
            "{ty}"
        );
        assert_eq!(cfg.relative_attention_num_buckets, want.relative_attention_num_buckets);
        assert_eq!(cfg.relative_attention_max_distance, want.relative_attention_max_distance);
        assert_eq!(cfg.layer_norm_epsilon as f32, want.layer_norm_epsilon as f32);
        assert_eq!(cfg.feed_forward().unwrap(), want.feed_forward().unwrap());
        assert_eq!(cfg.tie_word_embeddings, want.tie_word_embeddings);
        assert_eq!(cfg.n_positions, Some(512));
        assert_eq!((gen.decoder_start_token_id, gen.pad_token_id, gen.eos_token_id.clone()), (0, 0, vec![1]));
    }
}

#[test]
fn every_type_matches_transformers_on_the_dequantized_weights() {
    let o = oracle();
    let input = o.input();
    let dec = o.rows("decoder_input_ids");
    for ty in types(&o) {
        let (cfg, gen, store) = load_dir(file(&ty)).unwrap();
        let lm = T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
        let out = lm.forward(&input, Some(&dec.concat()), None, None).unwrap();
        assert_close(&format!("{ty} logits"), &out.logits.unwrap().data, &o.tensor(&format!("{ty}.logits")), o.tolerance(&["types", &ty, "fp64_diff", "logits"]));
        // one row, one decoder position at a time: the fused matrix × vector kernels (m = 1)
        let want = o.tensor(&format!("{ty}.logits"));
        let len0 = o.rows("attention_mask")[0].iter().filter(|&&m| m == 1).count();
        let one = Batch::new(o.rows("input_ids")[0][..len0].to_vec(), None, 1, len0).unwrap();
        let h = lm.encode(&one).unwrap();
        let mut cache = lm.start_decoding(&h, &vec![1; len0]).unwrap();
        let mut steps = Vec::new();
        for &id in &dec[0] {
            let hid = lm.decode(&mut cache, &[id], 1, None).unwrap();
            steps.extend(lm.lm_logits(&hid).unwrap().data);
        }
        let n = dec[0].len() * cfg.vocab_size;
        assert_close(&format!("{ty} logits, row 0 step by step"), &steps, &Tensor::new(vec![n], want.data[..n].to_vec()), o.tolerance(&["types", &ty, "fp64_diff", "logits"]));
        let enc = T5::load(cfg.clone(), &store, ModelKind::Encoder, Cpu).unwrap();
        let name = "encoder_last_hidden_state";
        assert_close(&format!("{ty} {name}"), &enc.encode(&input).unwrap().data, &o.tensor(&format!("{ty}.{name}")), o.tolerance(&["types", &ty, "fp64_diff", name]));
        let g = &o.json["types"][&ty]["greedy"];
        assert!(g["min_top_gap"].as_f64().unwrap() > 1e-3, "{ty}: the fixture's greedy margin is too small to compare ids");
        let mut gen = gen.clone();
        gen.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);
        let ids = greedy(&lm, &input, &gen, |_| true).unwrap();
        let want: Vec<Vec<u32>> = g["sequences"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect();
        assert_eq!(ids, want, "{ty}: greedy ids");
    }
}

fn logits_of(store: &WeightStore, cfg: t5_core::T5Config) -> Vec<u32> {
    let o = oracle();
    let lm = T5::load(cfg, store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    let out = lm.forward(&o.input(), Some(&o.rows("decoder_input_ids").concat()), None, None).unwrap();
    out.logits.unwrap().data.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn f32_and_bf16_files_give_exactly_the_safetensors_logits() {
    // the fixture's weights are bf16 values, so both files hold them exactly (f16 rounds the
    // smallest ones: its oracle is transformers on its own values, above)
    let (cfg, _, st) = load_dir(dir().join("tiny-t5-gguf")).unwrap();
    let want = logits_of(&st, cfg);
    for ty in ["f32", "bf16"] {
        let (cfg, _, store) = load_dir(file(ty)).unwrap();
        let got = logits_of(&store, cfg);
        let worst = got.iter().zip(&want).map(|(a, b)| (f32::from_bits(*a) - f32::from_bits(*b)).abs()).fold(0.0f32, f32::max);
        assert!(got == want, "{ty}: logits differ from the safetensors model's (max {worst:e})");
    }
}

#[test]
fn quantized_blocks_convert_without_loss() {
    for (ty, want) in [("q8_0", GgmlType::Q8_0), ("q4_0", GgmlType::Q4_0), ("q4_1", GgmlType::Q4_1)] {
        let bytes = std::fs::read(file(ty)).unwrap();
        let g = gguf::parse(&bytes, ty).unwrap();
        let (_, _, store) = load_dir(file(ty)).unwrap();
        let mut checked = 0;
        for t in g.tensors.iter().filter(|t| t.ty.is_quantized()) {
            assert_eq!(t.ty, want);
            let (k, n) = (t.dims[0], t.dims[1]);
            let name = gguf::hf_name(&t.name, true).unwrap();
            let q = store.get_packed(&name, &[n, k]).unwrap().unwrap_or_else(|| panic!("{name} not packed"));
            // the fused-kernel forms: q8 with block scales, q4 with groups of 32 (no f32 copies)
            // (rows not a multiple of 64, ffn_down here: Q4_0 as int8 blocks of q - 8, Q4_1 in f32)
            match (&q, want) {
                (QWeight::Q8 { scales, .. }, GgmlType::Q8_0) => assert_eq!(scales.len(), n * k / 32),
                (QWeight::Q4 { group: 32, .. }, GgmlType::Q4_0 | GgmlType::Q4_1) if k % 64 == 0 => {}
                (QWeight::Q8 { scales, .. }, GgmlType::Q4_0) if k % 64 != 0 => assert_eq!(scales.len(), n * k / 32),
                (QWeight::F32 { .. }, GgmlType::Q4_1) if k % 64 != 0 => {}
                (other, _) => panic!("{ty} {name} (k = {k}): converted to {:?}", other.dtype()),
            }
            let mut reference = vec![0.0f32; n * k];
            let bb = gguf::tensor_bytes(&bytes, t).len() / (n * k / 32);
            for (b, o) in gguf::tensor_bytes(&bytes, t).chunks_exact(bb).zip(reference.chunks_exact_mut(32)) {
                t5_core::dtype::ggml::dequantize_block(t.ty, b, o);
            }
            let ours = q.to_tensor();
            if let Some(i) = (0..reference.len()).find(|&i| ours.data[i].to_bits() != reference[i].to_bits()) {
                panic!("{ty} {name}: dequantized [{i}] = {:e}, ggml's {:e}", ours.data[i], reference[i]);
            }
            checked += 1;
        }
        assert!(checked >= 10, "{ty}: only {checked} quantized tensors");
        eprintln!("{ty}: {checked} tensors bit-identical to ggml's dequantization");
    }
}

#[test]
fn a_directory_holding_one_gguf_loads() {
    let tmp = std::env::temp_dir().join(format!("t5-gguf-dir-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(file("q4_0"), tmp.join("model-q4_0.gguf")).unwrap();
    // a config.json beside it (a Hub repo holding a GGUF) does not hide it
    std::fs::copy(dir().join("tiny-t5-gguf/config.json"), tmp.join("config.json")).unwrap();
    let (cfg, _, store) = load_dir(&tmp).unwrap();
    let (cfg2, _, store2) = load_dir(file("q4_0")).unwrap();
    assert!(logits_of(&store, cfg) == logits_of(&store2, cfg2));
    std::fs::copy(file("q8_0"), tmp.join("model-q8_0.gguf")).unwrap();
    assert!(matches!(load_dir(&tmp).err(), Some(T5Error::MissingFile(m)) if m.contains("several")));
    std::fs::remove_dir_all(&tmp).unwrap();
}

fn load_bytes(bytes: Vec<u8>) -> Result<(), T5Error> {
    gguf::load("test.gguf", bytes).map(|_| ())
}

/// Byte position of the tensor info of `name` (its `u64` length prefix).
fn info_at(bytes: &[u8], name: &str) -> usize {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend(name.as_bytes());
    bytes.windows(key.len()).position(|w| w == key.as_slice()).unwrap_or_else(|| panic!("{name} not in the header"))
}

#[test]
fn version_2_headers_read_like_version_3() {
    let mut bytes = std::fs::read(file("q4_1")).unwrap();
    assert_eq!(&bytes[4..8], &3u32.to_le_bytes());
    let (cfg, _, s3) = gguf::load("v3", bytes.clone()).unwrap();
    let want = logits_of(&s3, cfg);
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let (cfg, _, s2) = gguf::load("v2", bytes.clone()).unwrap();
    assert!(logits_of(&s2, cfg) == want);
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(load_bytes(bytes), Err(T5Error::BadWeights { msg, .. }) if msg.contains("version 1")));
}

#[test]
fn malformed_files_are_typed_errors_never_panics() {
    let good = std::fs::read(file("q4_0")).unwrap();
    // bad magic
    let mut b = good.clone();
    b[..4].copy_from_slice(b"GGUX");
    assert!(matches!(load_bytes(b), Err(T5Error::BadWeights { msg, .. }) if msg.contains("not a GGUF file")));
    assert!(matches!(load_bytes(std::fs::read(dir().join("tiny-t5-gguf/model.safetensors")).unwrap()), Err(T5Error::BadWeights { .. })));
    // truncated anywhere: in the header, the metadata, the tensor infos, the data
    let g = gguf::parse(&good, "q4_0").unwrap();
    let mut cuts: Vec<usize> = vec![0, 3, 4, 7, 12, 20, 23, 24, 30, 100, 1000, g.data_start - 1, g.data_start, good.len() - 1];
    cuts.extend((0..good.len()).step_by(997));
    for cut in cuts {
        match load_bytes(good[..cut].to_vec()) {
            Err(T5Error::BadWeights { msg, .. }) => assert!(msg.contains("truncated") || msg.contains("not a GGUF"), "cut {cut}: {msg}"),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // another architecture
    let llama = std::fs::read(dir().join("llama.gguf")).unwrap();
    assert!(matches!(load_bytes(llama), Err(T5Error::BadConfig(m)) if m.contains("\"llama\"")));
    // a tensor type the engine does not read (the type field of a tensor info set to Q4_K = 12)
    let name = "enc.blk.0.attn_k.weight";
    let at = info_at(&good, name) + 8 + name.len();
    let n_dims = u32::from_le_bytes(good[at..at + 4].try_into().unwrap()) as usize;
    let ty_at = at + 4 + 8 * n_dims;
    assert_eq!(u32::from_le_bytes(good[ty_at..ty_at + 4].try_into().unwrap()), 2, "Q4_0");
    let mut b = good.clone();
    b[ty_at..ty_at + 4].copy_from_slice(&12u32.to_le_bytes());
    match load_bytes(b) {
        Err(T5Error::UnsupportedDtype { name: n, dtype }) => assert!(n == name && dtype.contains("Q4_K"), "{n} {dtype}"),
        other => panic!("{other:?}"),
    }
    // a missing tensor (renamed in place)
    let name = "dec.blk.0.cross_attn_q.weight";
    let mut b = good.clone();
    let at = info_at(&good, name) + 8 + "dec.blk.0.cross_attn_".len();
    b[at] = b'x';
    assert_eq!(load_bytes(b), Err(T5Error::MissingTensor(name.into())));
    // a shape the config does not imply: enc.blk.0.attn_q as [64, 32] (fewer rows, still in the file)
    let name = "enc.blk.0.attn_q.weight";
    let at = info_at(&good, name) + 8 + name.len() + 4;
    let mut b = good.clone();
    b[at + 8..at + 16].copy_from_slice(&32u64.to_le_bytes());
    assert_eq!(load_bytes(b), Err(T5Error::ShapeMismatch { name: name.into(), expected: vec![64, 64], found: vec![64, 32] }));
    // tensor data past the end of the file (an offset that points beyond it)
    let at = ty_at + 4;
    let mut b = good.clone();
    b[at..at + 8].copy_from_slice(&((good.len() as u64).div_ceil(32) * 32).to_le_bytes());
    assert!(matches!(load_bytes(b), Err(T5Error::BadWeights { msg, .. }) if msg.contains("truncated")));
    // absurd counts do not allocate
    let mut b = good.clone();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(load_bytes(b), Err(T5Error::BadWeights { .. })));
    let mut b = good.clone();
    b[16..24].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(matches!(load_bytes(b), Err(T5Error::BadWeights { .. })));
}

#[test]
fn an_untied_head_is_the_output_tensor() {
    let o = oracle();
    let spec = &o.json["untied"];
    let (cfg, gen, store) = load_dir(dir().join(spec["file"].as_str().unwrap())).unwrap();
    assert!(!cfg.tie_word_embeddings && !cfg.scales_decoder_output());
    let lm = T5::load(cfg, &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    let out = lm.forward(&o.input(), Some(&o.rows("decoder_input_ids").concat()), None, None).unwrap();
    let tol = o.tolerance(&["untied", "fp64_diff", "logits"]);
    assert_close("untied q4_1 logits", &out.logits.unwrap().data, &o.tensor("untied-q4_1.logits"), tol);
    let g = &spec["greedy"];
    assert!(g["min_top_gap"].as_f64().unwrap() > 1e-3);
    let mut gen = gen.clone();
    gen.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);
    let want: Vec<Vec<u32>> = g["sequences"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect();
    assert_eq!(greedy(&lm, &o.input(), &gen, |_| true).unwrap(), want);
}

#[test]
fn an_encoder_only_file_builds_the_encoder() {
    let o = oracle();
    let (cfg, _, store) = load_dir(dir().join("tiny-t5encoder-q4_0.gguf")).unwrap();
    assert!(!cfg.is_encoder_decoder);
    assert_eq!(cfg.architectures.as_deref(), Some(&["T5EncoderModel".to_string()][..]));
    let enc = T5::load(cfg.clone(), &store, ModelKind::Encoder, Cpu).unwrap();
    let h = enc.encode(&o.input()).unwrap();
    let name = "encoder_last_hidden_state";
    assert_close("t5encoder q4_0", &h.data, &o.tensor(&format!("q4_0.{name}")), o.tolerance(&["types", "q4_0", "fp64_diff", name]));
    // the same weights as the full q4_0 file: the same numbers
    let (cfg2, _, full) = load_dir(file("q4_0")).unwrap();
    let h2 = T5::load(cfg2, &full, ModelKind::Encoder, Cpu).unwrap().encode(&o.input()).unwrap();
    assert!(h.data.iter().zip(&h2.data).all(|(a, b)| a.to_bits() == b.to_bits()));
    // no decoder in the file
    assert!(matches!(T5::load(cfg, &store, ModelKind::ConditionalGeneration, Cpu).err(), Some(T5Error::MissingTensor(_))));
}
