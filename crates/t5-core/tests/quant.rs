//! Quantized and half-precision weights against transformers run on the same weights quantized and
//! dequantized in Python (`scripts/make_quant_fixtures.py`): the quantization is bit-identical
//! (codes, scales, zero points of stored tensors), logits and encoder states within
//! 1e-4 + 4 × fp64 spread, greedy ids identical where the margin allows, fallbacks as reported.
//! Pre-quantized safetensors round trip without the original weights.

use serde_json::Value;
mod common;

use common::{assert_close, fixtures, Oracle};
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::dtype::quant::METADATA_KEY;
use t5_core::formats::safetensors::quantize_checkpoint;
use t5_core::{QWeight, WeightDtype};
use t5_core::{Batch, Cpu, ModelKind, Tensor, WeightStore, T5};

fn oracle(model: &str) -> Oracle {
    Oracle::load(fixtures().join("quant"), model)
}

fn check(model: &str) {
    let o = oracle(model);
    let (cfg, gen, store) = load_dir(fixtures().join(model)).unwrap();
    let input = o.input();
    let dec = o.rows("decoder_input_ids");
    let row0 = o.json["logits_rows"] == "batch row 0 only";
    for (dt_name, spec) in o.json["dtypes"].as_object().unwrap() {
        let dtype = WeightDtype::parse(dt_name).unwrap();
        let lm = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu, dtype).unwrap();
        // fallbacks exactly as the Python side decided
        let mut want: Vec<(String, String)> =
            spec["fallbacks"].as_array().unwrap().iter().map(|f| (f[0].as_str().unwrap().to_string(), f[1].as_str().unwrap().to_string())).collect();
        let mut got: Vec<(String, String)> = lm.weight_fallbacks().iter().map(|(n, d)| (n.clone(), d.name().to_string())).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{model} {dt_name}: fallbacks");
        let out = lm.forward(&input, Some(&dec.concat()), None, None).unwrap();
        let logits = out.logits.unwrap();
        let ours = if row0 { &logits.data[..logits.data.len() / input.batch] } else { &logits.data[..] };
        assert_close(&format!("{model} {dt_name} logits"), ours, &o.tensor(&format!("{dt_name}.logits")), o.tolerance(&["dtypes", dt_name, "fp64_diff", "logits"]));
        // one row, one decoder position at a time: the fused matrix × vector kernels (m = 1)
        let want0 = o.tensor(&format!("{dt_name}.logits"));
        let len0 = o.rows("attention_mask")[0].iter().filter(|&&m| m == 1).count();
        let one = Batch::new(o.rows("input_ids")[0][..len0].to_vec(), None, 1, len0).unwrap();
        let h = lm.encode(&one).unwrap();
        let mut cache = lm.start_decoding(&h, &vec![1; len0]).unwrap();
        let v = cfg.vocab_size;
        let mut step_logits = Vec::new();
        for &id in &dec[0] {
            let hid = lm.decode(&mut cache, &[id], 1, None).unwrap();
            step_logits.extend(lm.lm_logits(&hid).unwrap().data);
        }
        let t = dec[0].len();
        let want_row0 = Tensor::new(vec![t * v], want0.data[..t * v].to_vec());
        assert_close(&format!("{model} {dt_name} logits, row 0 step by step"), &step_logits, &want_row0, o.tolerance(&["dtypes", dt_name, "fp64_diff", "logits"]));
        let enc = T5::load_with_dtype(cfg.clone(), &store, ModelKind::Encoder, Cpu, dtype).unwrap();
        let h = enc.encode(&input).unwrap();
        let name = "encoder_last_hidden_state";
        assert_close(&format!("{model} {dt_name} {name}"), &h.data, &o.tensor(&format!("{dt_name}.{name}")), o.tolerance(&["dtypes", dt_name, "fp64_diff", name]));
        let g = &spec["greedy"];
        if g["min_top_gap"].as_f64().unwrap() > 1e-3 {
            let mut gen = gen.clone();
            gen.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);
            let ids = greedy(&lm, &input, &gen, |_| true).unwrap();
            let want: Vec<Vec<u32>> = g["sequences"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect();
            assert_eq!(ids, want, "{model} {dt_name}: greedy ids");
        }
    }
}

#[test]
fn tiny_t5_q8_q4_fp16_match_dequantized_transformers() {
    check("tiny-t5");
}

#[test]
fn tiny_t5_v1_1_q8_fp16_match_dequantized_transformers() {
    check("tiny-t5-v1_1");
}

#[test]
fn tiny_t5_q128_q4_q8_bf16_fp16_match_dequantized_transformers() {
    check("tiny-t5-q128");
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn quantization_is_bit_identical_to_python() {
    let mut checked = 0;
    for model in ["tiny-t5-q128", "tiny-t5"] {
        let o = oracle(model);
        let (_, _, store) = load_dir(fixtures().join(model)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&o.tensors).unwrap();
        let names: Vec<String> = st.names().into_iter().filter(|n| n.starts_with("packed.") && n.ends_with(".qweight")).map(|n| n.to_string()).collect();
        for key in names {
            // packed.<q4|q8>.<tensor>.qweight
            let scheme = &key["packed.".len().."packed.q4".len()];
            let tensor = key["packed.q4.".len()..key.len() - ".qweight".len()].to_string();
            let shape = store.shape(&tensor).unwrap().to_vec();
            let w = store.get(&tensor, &shape).unwrap();
            let (_, want_q) = o.raw(&key);
            let want_s = f32s(&o.raw(&format!("packed.{scheme}.{tensor}.scales")).1);
            match (scheme, QWeight::from_tensor(w, WeightDtype::parse(scheme).unwrap())) {
                ("q4", QWeight::Q4 { packed, scales, zeros, .. }) => {
                    assert_eq!(packed, want_q, "{tensor}: q4 packed codes");
                    assert_eq!(bits(&scales), bits(&want_s), "{tensor}: q4 scales");
                    assert_eq!(bits(&zeros), bits(&f32s(&o.raw(&format!("packed.q4.{tensor}.zeros")).1)), "{tensor}: q4 zeros");
                }
                ("q8", QWeight::Q8 { codes, scales, .. }) => {
                    assert_eq!(codes.iter().map(|&c| c as u8).collect::<Vec<_>>(), want_q, "{tensor}: q8 codes");
                    assert_eq!(bits(&scales), bits(&want_s), "{tensor}: q8 scales");
                }
                (s, q) => panic!("{tensor}: {s} gave {:?}", q.dtype()),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "packed reference tensors");
}

#[test]
fn quantized_safetensors_round_trip_without_original_weights() {
    let dir = fixtures().join("tiny-t5-q128");
    let (cfg, _, store) = load_dir(&dir).unwrap();
    let o = oracle("tiny-t5-q128");
    let input = o.input();
    let dec = o.rows("decoder_input_ids").concat();
    for dtype in [WeightDtype::Q4, WeightDtype::Q8] {
        let direct = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu, dtype).unwrap();
        let (bytes, fallbacks) = quantize_checkpoint(&store, dtype).unwrap();
        assert!(fallbacks.is_empty());
        let saved = WeightStore::from_shards(vec![("model.safetensors".into(), bytes)]).unwrap();
        assert!(!saved.contains("shared.weight") && saved.contains("shared.weight.qweight"), "packed, no original");
        let note: Value = serde_json::from_str(&saved.metadata(METADATA_KEY).expect("scheme note")).unwrap();
        assert_eq!(note["dtype"], dtype.name());
        assert_eq!(note["q4"]["group_size"], 128);
        // loaded as stored (the requested dtype does not matter for packed tensors)
        let loaded = T5::load(cfg.clone(), &saved, ModelKind::ConditionalGeneration, Cpu).unwrap();
        drop(saved);
        assert_eq!(loaded.weight_bytes(), direct.weight_bytes());
        let a = direct.forward(&input, Some(&dec), None, None).unwrap().logits.unwrap();
        let b = loaded.forward(&input, Some(&dec), None, None).unwrap().logits.unwrap();
        assert_eq!(bits(&a.data), bits(&b.data), "{dtype:?}: reloaded logits");
    }
    // q4 keeps about 4.5 bits per weight: well under a quarter of fp32
    let f32m = T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    let q4m = T5::load_with_dtype(cfg, &store, ModelKind::ConditionalGeneration, Cpu, WeightDtype::Q4).unwrap();
    assert!(q4m.weight_bytes() * 6 < f32m.weight_bytes(), "{} vs {}", q4m.weight_bytes(), f32m.weight_bytes());
}

#[test]
fn bad_packed_tensors_are_typed_errors() {
    let (cfg, _, store) = load_dir(fixtures().join("tiny-t5-q128")).unwrap();
    let (bytes, _) = quantize_checkpoint(&store, WeightDtype::Q4).unwrap();
    // drop one scales tensor: MissingTensor / BadWeights, never a panic
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().filter(|(n, _)| n != "encoder.block.0.layer.0.SelfAttention.q.weight.zeros").collect();
    let cut = safetensors::serialize(views, None).unwrap();
    let s = WeightStore::from_shards(vec![("m.safetensors".into(), cut)]).unwrap();
    let err = T5::load(cfg.clone(), &s, ModelKind::ConditionalGeneration, Cpu).err().expect("error");
    assert_eq!(err.code(), "MissingTensor", "{err}");
    assert!(WeightDtype::parse("q5").is_err());
}
