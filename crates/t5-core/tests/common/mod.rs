//! What the t5-core test files share: the fixture directory, transformers' oracle files (a JSON of
//! inputs, ids and fp64 spreads next to a safetensors of outputs), id rows, the oracle tolerance
//! (1e-4 + 4 × the stored max |fp64 − fp32|) and the comparison against it.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use t5_core::{Batch, Tensor};

/// `test/fixtures` of the repository.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures")
}

pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Rows of ids (`[[1, 2], [3, 4]]`).
pub fn rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect()
}

/// The batch of a JSON holding `input_ids` and `attention_mask`.
pub fn batch(json: &Value) -> Batch {
    let (ids, mask) = (rows(&json["input_ids"]), rows(&json["attention_mask"]));
    Batch::new(ids.concat(), Some(mask.concat()), ids.len(), ids[0].len()).unwrap()
}

/// The oracle tolerance for a stored fp64 spread.
pub fn tolerance(fp64_diff: f64) -> f32 {
    (1e-4 + 4.0 * fp64_diff) as f32
}

/// One oracle: `<dir>/<name>.json` and `<dir>/<name>.safetensors`.
pub struct Oracle {
    pub json: Value,
    pub tensors: Vec<u8>,
}

impl Oracle {
    pub fn load(dir: impl AsRef<Path>, name: &str) -> Oracle {
        let dir = dir.as_ref();
        let json = read_json(dir.join(format!("{name}.json")));
        let path = dir.join(format!("{name}.safetensors"));
        let tensors = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Oracle { json, tensors }
    }

    /// A stored tensor's shape and raw bytes.
    pub fn raw(&self, name: &str) -> (Vec<usize>, Vec<u8>) {
        let st = safetensors::SafeTensors::deserialize(&self.tensors).unwrap();
        let v = st.tensor(name).unwrap_or_else(|_| panic!("oracle tensor {name} missing"));
        (v.shape().to_vec(), v.data().to_vec())
    }

    /// A stored f32 tensor.
    pub fn tensor(&self, name: &str) -> Tensor {
        let (shape, b) = self.raw(name);
        Tensor::new(shape, b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    pub fn rows(&self, key: &str) -> Vec<Vec<u32>> {
        rows(&self.json[key])
    }

    /// The oracle's `input_ids` / `attention_mask` batch.
    pub fn input(&self) -> Batch {
        batch(&self.json)
    }

    /// The tolerance for the fp64 spread stored at `path` (e.g. `["fp64_diff", "logits"]`).
    pub fn tolerance(&self, path: &[&str]) -> f32 {
        let spread = path.iter().fold(&self.json, |v, k| &v[*k]).as_f64().unwrap_or_else(|| panic!("oracle {} missing", path.join(".")));
        tolerance(spread)
    }
}

/// `max |ours - theirs| <= tol`, naming the worst element; prints the max difference.
pub fn assert_close(what: &str, ours: &[f32], theirs: &Tensor, tol: f32) {
    assert_eq!(ours.len(), theirs.data.len(), "{what}: size");
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (a, b)) in ours.iter().zip(&theirs.data).enumerate() {
        let d = (a - b).abs();
        if !(d <= worst) {
            worst = d;
            at = i;
        }
    }
    assert!(worst <= tol, "{what}: max |ours - transformers| = {worst:e} at {at} (ours {}, theirs {}), tolerance {tol:e}", ours[at], theirs.data[at]);
    eprintln!("{what}: max diff {worst:e} (tolerance {tol:e})");
}

/// [`assert_close`] on whole tensors, shapes first.
pub fn assert_close_tensor(what: &str, ours: &Tensor, theirs: &Tensor, tol: f32) {
    assert_eq!(ours.shape, theirs.shape, "{what}: shape");
    assert_close(what, &ours.data, theirs, tol);
}
