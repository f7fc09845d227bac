//! Attention micro-benchmark: t5-small's heads (8 × 64) through `attention_host` (the CPU backend's
//! attention on one thread), `q_len` queries against `kv_len` keys: an encoder layer's self-attention
//! (`q_len = kv_len`, a position bias, key padding) or a decode step's cross-attention (`q_len = 1`,
//! no bias). `setup_attention` builds the inputs, `run_attention(iters)` runs it; `attention.mjs`
//! times it (`t5-bench attention` is the same case natively).
use t5_core::backend::cpu::attention::attention_host;
use t5_core::backend::{AttentionMask, AttentionShape};
use t5_core::tensor::Tensor;

struct Case {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: Option<Tensor>,
    key_mask: Vec<u32>,
    shape: AttentionShape,
}

static mut CASE: Option<Case> = None;

fn data(len: usize, a: usize, b: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * a % b) as f32 / b as f32 - 0.5) * 2.0).collect()
}

/// `bias` 1: a position bias `[8, q_len + kv_len - 1]` (self-attention; the diagonal form), 0: none (cross-attention).
#[no_mangle]
pub extern "C" fn setup_attention(q_len: usize, kv_len: usize, bias: u32) {
    let (heads, d) = (8, 64);
    let inner = heads * d;
    let case = Case {
        q: Tensor::new(vec![1, q_len, inner], data(q_len * inner, 7, 101)),
        k: Tensor::new(vec![1, kv_len, inner], data(kv_len * inner, 13, 997)),
        v: Tensor::new(vec![1, kv_len, inner], data(kv_len * inner, 17, 991)),
        bias: (bias != 0).then(|| Tensor::new(vec![heads, q_len + kv_len - 1], data(heads * (q_len + kv_len - 1), 3, 89))),
        key_mask: vec![1; kv_len],
        shape: AttentionShape { batch: 1, heads, head_dim: d, q_len, kv_len, half: false },
    };
    unsafe { *std::ptr::addr_of_mut!(CASE) = Some(case) };
}

/// `iters` attention calls; returns a sum of outputs (so that nothing is optimized away).
#[no_mangle]
pub extern "C" fn run_attention(iters: u32) -> f32 {
    let c = unsafe { (*std::ptr::addr_of!(CASE)).as_ref().expect("setup_attention first") };
    let mask = AttentionMask { key_mask: Some(&c.key_mask), causal_offset: None };
    let mut s = 0.0;
    for _ in 0..iters {
        s += attention_host(&c.q, &c.k, &c.v, c.bias.as_ref(), mask, c.shape, None).data[5];
    }
    s
}
