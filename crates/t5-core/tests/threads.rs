//! The CPU backend on several threads gives the same bits as on one thread, on every fixture the
//! oracle suites check (safetensors in every storage form, float16 activations, pre-quantized q4,
//! GGUF, task heads): encoder states, logits, loss, greedy and beam ids. One thread is what the
//! oracle suites compare with transformers, so N threads pass them too.
//!
//! Every job is split (`with_grain(0)`), whatever its size, and the thread counts include ones
//! that do not divide the weights' rows evenly.

use std::path::PathBuf;
use t5_core::generate::generate;
use t5_core::heads::{ForwardArgs, Task, TaskModel};
use t5_core::hub::load_dir;
use t5_core::model::Half;
use t5_core::{Batch, Cpu, GenerationConfig, ModelKind, T5Config, Tensor, WeightDtype, WeightStore, T5};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures")
}

const THREADS: [usize; 3] = [2, 3, 5];

fn backend(threads: usize) -> Cpu {
    Cpu::with_threads(threads).with_grain(0)
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data.iter().map(|v| v.to_bits()).collect()
}

/// Two rows, the second padded, long enough to give attention several keys.
fn input(vocab: usize) -> Batch {
    let ids: Vec<u32> = (0..24).map(|i| ((i * 37 + 5) % (vocab - 3) + 2) as u32).collect();
    let mut mask = vec![1u32; 24];
    mask[20..].iter_mut().for_each(|m| *m = 0);
    Batch::new(ids, Some(mask), 2, 12).unwrap()
}

/// Everything one model computes, as bits.
fn run(m: &T5<Cpu>, gen: &GenerationConfig) -> Vec<Vec<u32>> {
    let input = input(m.config.vocab_size);
    let dec: Vec<u32> = (0..10).map(|i| (i * 13 % 50) as u32).collect();
    let labels: Vec<i64> = vec![3, 9, 4, -100, 7, 2, 8, 1, -100, -100];
    let out = m.forward(&input, Some(&dec), None, None).unwrap();
    let mut got = vec![bits(&out.encoder_last_hidden_state), bits(out.logits.as_ref().unwrap())];
    got.push(vec![m.forward(&input, None, Some(&labels), None).unwrap().loss.unwrap().to_bits()]);
    for beams in [1, 3] {
        let mut g = gen.clone();
        g.max_new_tokens = Some(8);
        g.num_beams = beams;
        g.do_sample = false;
        let out = generate(m, &input, &g, |_| true).unwrap();
        got.extend(out.sequences);
        got.extend(out.sequences_scores.map(|s| s.iter().map(|v| v.to_bits()).collect()));
    }
    got
}

fn check(what: &str, load: impl Fn(Cpu) -> T5<Cpu>, gen: &GenerationConfig) {
    let one = run(&load(Cpu::with_threads(1)), gen);
    for threads in THREADS {
        let many = run(&load(backend(threads)), gen);
        assert!(one == many, "{what}: {threads} threads differ from 1");
    }
}

fn dir(name: &str) -> (T5Config, GenerationConfig, WeightStore) {
    load_dir(fixtures().join(name)).unwrap()
}

#[test]
fn safetensors_checkpoints_in_every_storage_form() {
    for name in ["tiny-t5", "tiny-t5-v1_1", "tiny-t5-v1_1-sharded", "tiny-t5-f16"] {
        let (cfg, gen, store) = dir(name);
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4] {
            let load = |b| T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, b, dtype).unwrap();
            check(&format!("{name} {dtype:?}"), load, &gen);
        }
    }
}

#[test]
fn float16_activations() {
    for name in ["tiny-t5-f16", "tiny-t5-fp16-overflow"] {
        let (cfg, gen, store) = dir(name);
        for half in [Half::Guarded, Half::Unguarded] {
            let load = |b| T5::load_half(cfg.clone(), &store, ModelKind::ConditionalGeneration, b, half).unwrap();
            check(&format!("{name} {half:?}"), load, &gen);
        }
    }
}

#[test]
fn prequantized_q4_checkpoint() {
    let (cfg, gen, store) = dir("tiny-t5-q128");
    let load = |b| T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, b).unwrap();
    check("tiny-t5-q128", load, &gen);
}

#[test]
fn gguf_files() {
    for file in ["tiny-t5-f32", "tiny-t5-f16", "tiny-t5-bf16", "tiny-t5-q8_0", "tiny-t5-q4_0", "tiny-t5-q4_1", "tiny-t5-untied-q4_1"] {
        let name = format!("{file}.gguf");
        let bytes = std::fs::read(fixtures().join("gguf").join(&name)).unwrap();
        let (cfg, gen, store) = t5_core::formats::gguf::load(&name, bytes).unwrap();
        let load = |b| T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, b).unwrap();
        check(&name, load, &gen);
    }
}

#[test]
fn task_heads() {
    for name in ["seq-cls", "seq-cls-multi", "seq-cls-regression", "token-cls", "qa"] {
        let (cfg, _, store) = dir(&format!("heads/{name}"));
        // each row ends in one EOS (the sequence-classification heads pool there)
        let mut input = input(cfg.vocab_size);
        let eos = cfg.eos_token_ids()[0];
        input.ids[11] = eos;
        input.ids[12 + 7] = eos;
        let run = |b: Cpu| {
            let m = TaskModel::load(cfg.clone(), &store, None::<Task>, b).unwrap();
            let out = m.forward(ForwardArgs::new(&input.ids, Some(&input.mask), 2, 12)).unwrap();
            [&out.logits, &out.start_logits, &out.end_logits].map(|t| t.as_ref().map(bits))
        };
        let one = run(Cpu::with_threads(1));
        for threads in THREADS {
            assert_eq!(one, run(backend(threads)), "heads/{name}: {threads} threads differ from 1");
        }
    }
}

/// The encoder's and the cross-attention K/V's f32 weights are packed once at load (natively there
/// is no default memory limit), counted apart from the storage form: at least their f32 bytes, less
/// than the whole model's; q4 weights take the integer GEMM and are not packed.
#[test]
fn prefill_weights_are_packed_once_and_counted() {
    let (cfg, _, store) = load_dir(fixtures().join("tiny-t5")).unwrap();
    let m = T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    let (d, inner, ff) = (cfg.d_model, cfg.inner_dim(), cfg.d_ff);
    let enc = cfg.num_layers * (4 * d * inner + 2 * d * ff) * 4;
    let cross_kv = cfg.decoder_layers() * 2 * d * inner * 4;
    assert!(m.prefill_layout_bytes() >= enc + cross_kv, "{} < {}", m.prefill_layout_bytes(), enc + cross_kv);
    assert!(m.prefill_layout_bytes() < m.weight_bytes(), "{} vs {}", m.prefill_layout_bytes(), m.weight_bytes());
    let (cfg, _, store) = load_dir(fixtures().join("tiny-t5-q128")).unwrap();
    let q4 = T5::load_with_dtype(cfg, &store, ModelKind::ConditionalGeneration, Cpu, WeightDtype::Q4).unwrap();
    assert_eq!(q4.prefill_layout_bytes(), 0);
}
