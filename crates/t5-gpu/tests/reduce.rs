//! The GPU's reduction of a step's logits (`shaders/topk.wgsl`) against the host's (`TopKRows::from_host`, the
//! reference): the same candidates, max and gathered values bit for bit, both normalisers — the whole row's and
//! the one over the ids not suppressed (top-p after min-length) — within the `(vocab + 256)` ulp the searches
//! allow for, also where a suppressed id is the row's largest logit by far.

use t5_core::backend::{Backend, TopKRows};
use t5_core::Tensor;
use t5_gpu::GpuOptions;

mod common;
use common::*;

fn lcg(seed: &mut u64) -> f64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn top_k_rows_match_the_host_reduction() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let vocab = 5003;
    let rows = 6;
    let mut seed = 11u64;
    let mut data = vec![0.0f32; rows * vocab];
    for (r, row) in data.chunks_mut(vocab).enumerate() {
        let spread = [0.5f64, 3.0, 12.0, 12.0, 6.0, 1.0][r];
        row.iter_mut().for_each(|x| *x = (lcg(&mut seed) * 2.0 - 1.0) as f32 * spread as f32);
    }
    // the suppressed ids (EOS 1 and 4711) the largest logits of rows 2 and 3 by far; row 4 a tie at its top; row 5
    // -inf but for a few ids; a NaN in row 1
    data[2 * vocab + 1] = 40.0;
    data[3 * vocab + 4711] = 25.0;
    data[3 * vocab + 1] = 24.0;
    data[4 * vocab + 17] = 9.0;
    data[4 * vocab + 3000] = 9.0;
    data[5 * vocab..6 * vocab].iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
    for (id, v) in [(1usize, 3.0f32), (2, 2.0), (3, 2.0), (900, -1.0)] {
        data[5 * vocab + id] = v;
    }
    data[vocab + 33] = f32::NAN;
    let x = Tensor::new(vec![rows, vocab], data);
    let gpu_x = g.upload(x.clone());
    let u = 1.0 / (1u64 << 24) as f64;
    let tol = (vocab as f64 + 256.0) * u;
    for (k, suppress, gather) in [
        (128usize, vec![1u32, 4711], vec![]),
        (8, vec![1], (0..rows as u32).flat_map(|r| [1, 4711, r * 100, u32::MAX]).collect::<Vec<u32>>()),
        (128, vec![], vec![]),
    ] {
        let want = TopKRows::from_host(&x, k, &suppress, &gather);
        let got = pollster::block_on(g.top_k_rows_async(&gpu_x, k, &suppress, &gather)).unwrap();
        let what = format!("k {k}, suppress {suppress:?}");
        assert_eq!(got.ids, want.ids, "{what}: candidates");
        assert_eq!(bits(&got.values), bits(&want.values), "{what}: candidate values");
        assert_eq!(bits(&got.max), bits(&want.max), "{what}: max");
        assert_eq!(bits(&got.gathered), bits(&want.gathered), "{what}: gathered");
        assert_eq!(got.gather, want.gather, "{what}: gathered ids");
        for r in 0..rows {
            for (name, a, b) in [("sum_exp", got.sum_exp[r], want.sum_exp[r]), ("kept_sum_exp", got.kept_sum_exp[r], want.kept_sum_exp[r])] {
                assert!((a - b).abs() <= tol * b, "{what} row {r}: {name} {a} vs host {b}");
            }
        }
        if !suppress.is_empty() {
            // the normalisers differ where a suppressed id dominates: the whole row's is relative to it, the kept
            // one to the first candidate (each at least 1 with a finite candidate)
            assert_eq!(want.max[2], 40.0);
            assert!(want.sum_exp[2] < 1.0 + 1e-6 && want.kept_sum_exp[2] > 1.0 + 1.0, "{what}: {} {}", want.sum_exp[2], want.kept_sum_exp[2]);
            assert!(got.kept_sum_exp[2] > 2.0 && got.values[2 * k] < 40.0 && got.ids[2 * k] != 1);
        } else {
            assert_eq!(bits(&got.sum_exp.iter().map(|&s| s as f32).collect::<Vec<_>>()), bits(&got.kept_sum_exp.iter().map(|&s| s as f32).collect::<Vec<_>>()), "nothing suppressed: one normaliser");
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
