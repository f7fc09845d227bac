//! What the GPU test files share: the fixture directory, opening the GPU (or skipping with
//! `T5_GPU_TESTS=skip`), oracle JSON, its id rows and input batch, and the 1e-3 GPU-vs-CPU comparison.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use t5_core::{Batch, Tensor};
use t5_gpu::{Gpu, GpuOptions};

pub const TOL: f32 = 1e-3;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures")
}

pub fn gpu(opts: GpuOptions) -> Option<Gpu> {
    match pollster::block_on(Gpu::new(opts)) {
        Ok(g) => Some(g),
        Err(e) if std::env::var("T5_GPU_TESTS").as_deref() == Ok("skip") => {
            eprintln!("skipping GPU test: {e}");
            None
        }
        Err(e) => panic!("{e}\n(install a Vulkan driver: `bash scripts/setup.sh` installs Mesa lavapipe; T5_GPU_TESTS=skip skips)"),
    }
}

pub fn read_json(path: impl AsRef<std::path::Path>) -> Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The batch of a JSON holding `input_ids` and `attention_mask`.
pub fn batch(json: &Value) -> Batch {
    let (ids, mask) = (rows(&json["input_ids"]), rows(&json["attention_mask"]));
    Batch::new(ids.concat(), Some(mask.concat()), ids.len(), ids[0].len()).unwrap()
}

pub fn rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect()
}

pub fn assert_close(what: &str, gpu: &Tensor, cpu: &Tensor) {
    assert_eq!(gpu.shape, cpu.shape, "{what}: shape");
    let mut worst = (0.0f32, 0usize);
    for (i, (a, b)) in gpu.data.iter().zip(&cpu.data).enumerate() {
        let d = (a - b).abs();
        if !(d <= worst.0) {
            worst = (d, i);
        }
    }
    eprintln!("{what}: max |gpu - cpu| = {:.3e}", worst.0);
    assert!(worst.0 <= TOL, "{what}: |gpu - cpu| = {} at {} (gpu {}, cpu {}) > {TOL}", worst.0, worst.1, gpu.data[worst.1], cpu.data[worst.1]);
}
