//! Bad input gets a typed error that names the problem, never a panic or garbage.

use std::path::PathBuf;
mod common;

use common::fixtures;
use t5_core::hub::load_dir;
use t5_core::WeightStore;
use t5_core::{Batch, Cpu, ModelKind, T5Config, T5Error, T5};

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn tiny_config() -> T5Config {
    T5Config::from_json(&std::fs::read_to_string(fixture("tiny-t5/config.json")).unwrap()).unwrap()
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(fixture("tiny-t5/model.safetensors")).unwrap()
}

/// Rewrite a safetensors file with `edit` applied to its (name, dtype, shape, bytes) list.
fn rewrite(bytes: &[u8], edit: impl Fn(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>)) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut items: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut items);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = items
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn load(bytes: Vec<u8>, cfg: T5Config) -> Result<T5<Cpu>, T5Error> {
    let store = WeightStore::from_shards(vec![("model.safetensors".into(), bytes)])?;
    T5::load(cfg, &store, ModelKind::ConditionalGeneration, Cpu)
}

#[test]
fn truncated_weights_file() {
    let bytes = tiny_bytes();
    for cut in [0, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        let err = load(bytes[..cut].to_vec(), tiny_config()).err().expect("truncated file must fail");
        assert_eq!(err.code(), "BadWeights", "cut at {cut}: {err}");
    }
}

#[test]
fn corrupt_header() {
    let mut bytes = tiny_bytes();
    bytes[10] = b'!';
    bytes[11] = b'{';
    let err = load(bytes, tiny_config()).err().unwrap();
    assert_eq!(err.code(), "BadWeights", "{err}");
}

#[test]
fn tensor_of_wrong_shape_is_named() {
    let name = "encoder.block.1.layer.1.DenseReluDense.wi.weight";
    let bytes = rewrite(&tiny_bytes(), |items| {
        let it = items.iter_mut().find(|i| i.0 == name).unwrap();
        let (a, b) = (it.2[0], it.2[1]);
        it.2 = vec![b, a];
    });
    match load(bytes, tiny_config()).err().unwrap() {
        T5Error::ShapeMismatch { name: n, expected, found } => {
            assert_eq!(n, name);
            assert_eq!(expected, vec![found[1], found[0]]);
        }
        e => panic!("expected ShapeMismatch, got {e}"),
    }
}

#[test]
fn missing_tensor_is_named() {
    let name = "decoder.block.1.layer.1.EncDecAttention.k.weight";
    let bytes = rewrite(&tiny_bytes(), |items| items.retain(|i| i.0 != name));
    assert_eq!(load(bytes, tiny_config()).err().unwrap(), T5Error::MissingTensor(name.into()));
}

#[test]
fn config_that_does_not_match_the_tensors() {
    let mut cfg = tiny_config();
    cfg.d_ff *= 2;
    assert_eq!(load(tiny_bytes(), cfg).err().unwrap().code(), "ShapeMismatch");
    let mut cfg = tiny_config();
    cfg.num_layers += 1;
    assert_eq!(load(tiny_bytes(), cfg).err().unwrap(), T5Error::MissingTensor("encoder.block.2.layer.0.layer_norm.weight".into()));
    // a gated config over plain weights
    let mut cfg = tiny_config();
    cfg.feed_forward_proj = "gated-gelu".into();
    assert_eq!(load(tiny_bytes(), cfg).err().unwrap().code(), "MissingTensor");
}

#[test]
fn unknown_feed_forward_proj() {
    let text = std::fs::read_to_string(fixture("tiny-t5/config.json")).unwrap();
    for bad in ["gated-swishy", "relu-gelu", "gated-gelu-relu", "tanhish"] {
        let t = text.replace("\"relu\"", &format!("{bad:?}"));
        assert_eq!(T5Config::from_json(&t).err().unwrap(), T5Error::UnsupportedActivation(bad.into()));
    }
    // the ones transformers accepts
    for ok in ["relu", "gelu", "gated-gelu", "gated-silu", "gated-relu", "silu"] {
        let t = text.replace("\"relu\"", &format!("{ok:?}"));
        assert!(T5Config::from_json(&t).is_ok(), "{ok}");
    }
}

#[test]
fn bad_json_config() {
    assert_eq!(T5Config::from_json("{ not json").err().unwrap().code(), "BadConfig");
    assert_eq!(T5Config::from_json("{\"d_model\": \"big\"}").err().unwrap().code(), "BadConfig");
}

#[test]
fn missing_files() {
    let err = load_dir(fixture("no-such-model")).err().unwrap();
    assert_eq!(err.code(), "MissingFile", "{err}");
}

#[test]
fn bad_inputs() {
    let (cfg, _, store) = load_dir(fixture("tiny-t5")).unwrap();
    let m = T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    let oob = Batch::new(vec![5, cfg.vocab_size as u32, 1], None, 1, 3).unwrap();
    assert_eq!(m.encode(&oob).err().unwrap().code(), "BadInput");
    assert_eq!(Batch::new(vec![], None, 0, 0).err().unwrap().code(), "BadInput");
    assert_eq!(Batch::new(vec![1, 2, 3], None, 2, 2).err().unwrap().code(), "BadInput");
    assert_eq!(Batch::new(vec![1, 2], Some(vec![1, 2]), 1, 2).err().unwrap().code(), "BadInput");
    let ok = Batch::new(vec![5, 6, 1], None, 1, 3).unwrap();
    assert_eq!(m.forward(&ok, None, None, None).err().unwrap().code(), "BadInput");
    assert_eq!(m.forward(&ok, None, Some(&[5, -3]), None).err().unwrap().code(), "BadInput");
    let enc = T5::load(cfg, &store, ModelKind::Encoder, Cpu).unwrap();
    assert_eq!(enc.lm_logits(&t5_core::Tensor::zeros(vec![1, 1, 32])).err().unwrap().code(), "BadInput");
}
