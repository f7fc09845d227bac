//! Float16 activations on the CPU backend against transformers' float16 run (`from_pretrained(dtype=
//! torch.float16)`, its guards on) on the overflow fixture of scripts/make_fp16_fixtures.py: logits within
//! the stated fp16 tolerance and finite, greedy ids identical; without the guards the same model overflows
//! (non-finite logits), as transformers' does.

use serde_json::Value;
mod common;

use common::{batch, fixtures, read_json, rows};
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::model::Half;
use t5_core::{Batch, Cpu, ModelKind, Tensor, WeightStore, T5};

const NAME: &str = "tiny-t5-fp16-overflow";

struct Oracle {
    json: Value,
    logits: Tensor,
}

fn oracle() -> Oracle {
    let dir = fixtures().join("oracle");
    let json = read_json(dir.join(format!("{NAME}.json")));
    let bytes = std::fs::read(dir.join(format!("{NAME}.safetensors"))).unwrap();
    let store = WeightStore::from_shards(vec![("oracle.safetensors".into(), bytes)]).unwrap();
    let dec = rows(&json["decoder_input_ids"]);
    let logits = store.get("logits", &[dec.len(), dec[0].len(), 512]).unwrap();
    Oracle { json, logits }
}

fn input(o: &Oracle) -> Batch {
    batch(&o.json)
}

/// `|ours - oracle| <= atol + rtol * |oracle|` everywhere; returns the largest excess ratio.
fn check_fp16(what: &str, ours: &Tensor, o: &Oracle) {
    let (atol, rtol) = (o.json["tolerance"]["atol"].as_f64().unwrap() as f32, o.json["tolerance"]["rtol"].as_f64().unwrap() as f32);
    assert_eq!(ours.shape, o.logits.shape);
    let (mut worst, mut ratio) = ((0.0f32, 0usize), 0.0f32);
    for (i, (a, b)) in ours.data.iter().zip(&o.logits.data).enumerate() {
        assert!(a.is_finite(), "{what}: logit {i} is {a}");
        let d = (a - b).abs();
        if d > worst.0 {
            worst = (d, i);
        }
        ratio = ratio.max(d / (atol + rtol * b.abs()));
        assert!(d <= atol + rtol * b.abs(), "{what}: logit {i}: ours {a}, transformers {b} (|diff| {d} > {atol} + {rtol} * |oracle|)");
    }
    eprintln!("{what}: max |ours - transformers fp16| = {:.3e} (at {}, oracle {}), largest |diff| / tolerance {ratio:.2}", worst.0, worst.1, o.logits.data[worst.1]);
}

fn model(half: Half) -> T5<Cpu> {
    let (config, _, store) = load_dir(fixtures().join(NAME)).unwrap();
    T5::load_half(config, &store, ModelKind::ConditionalGeneration, Cpu, half).unwrap()
}

#[test]
fn guarded_fp16_matches_transformers_fp16() {
    let o = oracle();
    let m = model(Half::Guarded);
    assert_eq!(o.json["nonfinite_logits"]["guarded"], 0);
    let dec = rows(&o.json["decoder_input_ids"]).concat();
    let out = m.forward(&input(&o), Some(&dec), None, None).unwrap();
    check_fp16("cpu fp16 guarded logits", out.logits.as_ref().unwrap(), &o);
    let (_, mut gen, _) = load_dir(fixtures().join(NAME)).unwrap();
    gen.max_new_tokens = Some(o.json["greedy"]["max_new_tokens"].as_u64().unwrap() as usize);
    let ids = greedy(&m, &input(&o), &gen, |_| true).unwrap();
    assert_eq!(ids, rows(&o.json["greedy"]["sequences"]), "greedy ids vs transformers fp16");
}

/// Without transformers' guards (float16 `wo`, no clamp) the same numerics overflow: inf / NaN logits,
/// as transformers' unguarded run (recorded in the oracle).
#[test]
fn unguarded_fp16_overflows() {
    let o = oracle();
    assert!(o.json["nonfinite_logits"]["unguarded"].as_u64().unwrap() > 0);
    let m = model(Half::Unguarded);
    let dec = rows(&o.json["decoder_input_ids"]).concat();
    let out = m.forward(&input(&o), Some(&dec), None, None).unwrap();
    let bad = out.logits.as_ref().unwrap().data.iter().filter(|v| !v.is_finite()).count();
    eprintln!("unguarded: {bad} non-finite logits of {}", out.logits.as_ref().unwrap().data.len());
    assert!(bad > 0, "the unguarded float16 path should overflow on this fixture");
}

/// f32 activations on the same checkpoint are far from the float16 oracle: the fixture tells the
/// numerics apart (the float16 emulation is what makes the tolerance hold).
#[test]
fn f32_activations_differ_from_fp16_oracle() {
    let o = oracle();
    let m = model(Half::Off);
    let dec = rows(&o.json["decoder_input_ids"]).concat();
    let out = m.forward(&input(&o), Some(&dec), None, None).unwrap();
    let worst = out.logits.as_ref().unwrap().data.iter().zip(&o.logits.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("f32 activations vs fp16 oracle: max |diff| = {worst}");
    assert!(worst > 1.0, "f32 activations should not match the fp16 oracle ({worst})");
}
