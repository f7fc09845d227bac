//! q8 / q4 weights resident packed on the GPU (dequantized element by element in the kernels) against
//! the CPU backend with the same quantized weights: encoder output, decoder output and logits within
//! 1e-3, greedy ids identical, the packed form and its bytes reported as on the CPU, the same
//! dispatches per decode step as fp32. Load-time q8 / q4 (torchao: per-row int8, 4-bit groups of 128)
//! on the safetensors fixtures, and GGUF Q8_0 / Q4_0 / Q4_1 files (blocks of 32) loaded as they are;
//! both kernel families (software / hardware) and weights split into small chunks, on lavapipe.

use serde_json::Value;
use t5_core::backend::Backend;
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::{Batch, Cpu, GenerationConfig, ModelKind, T5Config, Tensor, WeightDtype, WeightStore, T5};
use t5_gpu::generate::{forward_async, greedy_async};
use t5_gpu::GpuOptions;

mod common;
use common::*;

/// A checkpoint and the inputs to run it on (the oracle file's).
struct Case {
    name: String,
    config: T5Config,
    store: WeightStore,
    input: Batch,
    dec: Vec<u32>,
}

impl Case {
    /// A fixture directory with the inputs of its `quant/<name>.json` oracle.
    fn dir(name: &str) -> Case {
        let (config, _, store) = load_dir(fixtures().join(name)).unwrap();
        let json = read_json(fixtures().join(format!("quant/{name}.json")));
        Case::new(name.into(), config, store, &json)
    }
    /// A GGUF file of test/fixtures/gguf with that directory's oracle inputs.
    fn gguf(ty: &str) -> Case {
        let dir = fixtures().join("gguf");
        let (config, _, store) = load_dir(dir.join(format!("tiny-t5-{ty}.gguf"))).unwrap();
        let json = read_json(dir.join("oracle.json"));
        Case::new(format!("gguf {ty}"), config, store, &json)
    }
    fn new(name: String, config: T5Config, store: WeightStore, json: &Value) -> Case {
        Case { name, config, store, input: batch(json), dec: rows(&json["decoder_input_ids"]).concat() }
    }
}

/// The CPU and the GPU model of `case` with weights as `dtype` (GGUF: as stored), compared.
fn parity(case: &Case, dtype: WeightDtype, opts: GpuOptions) {
    let Some(g) = gpu(opts.clone()) else { return };
    let form = if case.name.starts_with("gguf") { "as stored" } else { dtype.name() };
    let what = format!("{} {form} ({opts:?})", case.name);
    let kind = ModelKind::ConditionalGeneration;
    let cpu = T5::load_with_dtype(case.config.clone(), &case.store, kind, Cpu, dtype).unwrap();
    let gpu = T5::load_with_dtype(case.config.clone(), &case.store, kind, g.clone(), dtype).unwrap();
    // the same packed forms as on the CPU: nothing was dequantized on upload; the same bytes, but for
    // rows whose scale block is not a power of two (tiny-t5-v1_1's `wo`, 48 wide: its row scale is kept
    // once per 16 weights)
    assert_eq!(gpu.weight_fallbacks(), cpu.weight_fallbacks(), "{what}: fallbacks");
    let (gb, cb) = (gpu.weight_bytes(), cpu.weight_bytes());
    eprintln!("{what}: weight bytes GPU {gb}, CPU {cb}");
    assert!(gb >= cb && gb <= cb + cb / 100, "{what}: resident weight bytes GPU {gb} vs CPU {cb}");
    if case.name != "tiny-t5-v1_1" {
        assert_eq!(gb, cb, "{what}: resident weight bytes");
    }

    let c = cpu.forward(&case.input, Some(&case.dec), None, None).unwrap();
    let o = pollster::block_on(forward_async(&gpu, &case.input, Some(&case.dec), None, None)).unwrap();
    assert_close(&format!("{what} encoder_last_hidden_state"), &o.encoder_last_hidden_state, &c.encoder_last_hidden_state);
    assert_close(&format!("{what} decoder_last_hidden_state"), o.decoder_last_hidden_state.as_ref().unwrap(), c.decoder_last_hidden_state.as_ref().unwrap());
    assert_close(&format!("{what} logits"), o.logits.as_ref().unwrap(), c.logits.as_ref().unwrap());

    // decode steps (the matvec kernels, the norm-fused ones, the tied head / embedding rows)
    let gen = GenerationConfig { max_new_tokens: Some(8), ..GenerationConfig::from_model_config(&cpu.config) };
    let want = greedy(&cpu, &case.input, &gen, |_| true).unwrap();
    let (got, stats) = pollster::block_on(greedy_async(&gpu, &case.input, &gen, |_| true)).unwrap();
    assert_eq!(got, want, "{what}: greedy ids GPU vs CPU");
    eprintln!("{what}: {got:?} {stats:?}");
    assert_eq!(stats.submits_per_step, 1);

    // a single-row decode step's logits (matvec path with m = 1, as the CPU's fused matvec)
    let one = Batch::from_rows(&[case.input.ids[..case.input.seq].to_vec()]).unwrap();
    let c = cpu.forward(&one, Some(&[0]), None, None).unwrap();
    let o = pollster::block_on(forward_async(&gpu, &one, Some(&[0]), None, None)).unwrap();
    assert_close(&format!("{what} one-row logits"), o.logits.as_ref().unwrap(), c.logits.as_ref().unwrap());
}

fn all_kernels(case: &Case, dtype: WeightDtype) {
    parity(case, dtype, GpuOptions::default());
    parity(case, dtype, GpuOptions { software_kernels: Some(false), ..Default::default() });
    parity(case, dtype, GpuOptions { software_kernels: Some(true), ..Default::default() });
}

#[test]
fn q8_tiny_t5_matches_cpu() {
    all_kernels(&Case::dir("tiny-t5"), WeightDtype::Q8);
}

#[test]
fn q8_tiny_t5_v1_1_matches_cpu() {
    all_kernels(&Case::dir("tiny-t5-v1_1"), WeightDtype::Q8);
}

/// d_model 128, d_ff 256: torchao q4 groups of 128 (the tied embedding / head included), and q8.
#[test]
fn q4_and_q8_tiny_t5_q128_match_cpu() {
    let case = Case::dir("tiny-t5-q128");
    all_kernels(&case, WeightDtype::Q4);
    all_kernels(&case, WeightDtype::Q8);
}

/// GGUF blocks of 32: Q8_0 (q8 with per-block scales), Q4_0 / Q4_1 (q4 groups of 32; the 32-wide rows
/// of `wo` stored as q8 blocks).
#[test]
fn gguf_q8_0_q4_0_q4_1_match_cpu() {
    for ty in ["q8_0", "q4_0", "q4_1"] {
        let case = Case::gguf(ty);
        parity(&case, WeightDtype::F32, GpuOptions { software_kernels: Some(false), ..Default::default() });
        parity(&case, WeightDtype::F32, GpuOptions { software_kernels: Some(true), ..Default::default() });
    }
}

/// Packed weights split into pieces of at most 4 KiB (the q4 embedding table of 384 × 128 is 28 KiB
/// with its scales: several pieces, each with its own header, scales and zero points).
#[test]
fn split_packed_weights_match_cpu() {
    let case = Case::dir("tiny-t5-q128");
    for dtype in [WeightDtype::Q4, WeightDtype::Q8] {
        for sw in [false, true] {
            parity(&case, dtype, GpuOptions { max_chunk_bytes: Some(4 << 10), software_kernels: Some(sw), ..Default::default() });
        }
    }
    parity(&Case::gguf("q4_1"), WeightDtype::F32, GpuOptions { max_chunk_bytes: Some(1 << 10), ..Default::default() });
}

/// The backend reports the packed form; a decode step takes as many dispatches as with fp32 weights.
#[test]
fn packed_form_is_reported_and_dispatches_match_fp32() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let case = Case::dir("tiny-t5-q128");
    let mut per_step = Vec::new();
    for dtype in [WeightDtype::F32, WeightDtype::Q8, WeightDtype::Q4] {
        let m = T5::load_with_dtype(case.config.clone(), &case.store, ModelKind::ConditionalGeneration, g.clone(), dtype).unwrap();
        let w = t5_core::QWeight::from_tensor(Tensor::new(vec![4, 128], (0..512).map(|i| (i as f32 * 0.37).sin()).collect()), dtype);
        let bytes = w.bytes();
        let gw = g.upload_packed(w);
        assert_eq!(g.weight_dtype(&gw), dtype);
        assert_eq!(g.weight_bytes(&gw), bytes);
        let mut gen = GenerationConfig::from_model_config(&m.config);
        gen.max_new_tokens = Some(6);
        gen.min_new_tokens = Some(6);
        let (_, stats) = pollster::block_on(greedy_async(&m, &case.input, &gen, |_| true)).unwrap();
        eprintln!("{}: {stats:?}, {} weight bytes", dtype.name(), m.weight_bytes());
        per_step.push((stats.dispatches_per_step, stats.fused_per_step));
    }
    assert_eq!(per_step[1], per_step[0], "q8 vs fp32 dispatches per step");
    assert_eq!(per_step[2], per_step[0], "q4 vs fp32 dispatches per step");
}
