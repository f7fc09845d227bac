//! The CPU backend: host tensors, SIMD matmul (see `gemm`, `qkernels`), everything else in plain
//! loops; the matmuls and attention split across threads (`pool`, `parallel`), bit-identical to
//! one thread.

pub mod attention;
pub mod fixed;
pub mod gemm;
pub mod parallel;
pub mod qkernels;
pub mod softmax;

pub use attention::{attention_host, attention_threads};
pub use parallel::CpuWeight;

use super::{AttentionMask, AttentionShape, Backend};
pub use crate::act::{apply_act, gelu, gelu_new, silu};
use crate::config::Activation;
use crate::pool;
use crate::dtype::{QWeight, WeightDtype};
use crate::tensor::Tensor;

/// The CPU backend. `Cpu` (the constant) uses every core, at most [`DEFAULT_MAX_THREADS`];
/// [`Cpu::with_threads`] sets the number of threads (1: the calling thread only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// 0: automatic (see [`Cpu::threads`]).
    threads: usize,
    /// Smallest job (multiply-adds) worth splitting across threads.
    grain: usize,
}

/// The default backend value: all cores, at most [`DEFAULT_MAX_THREADS`].
#[allow(non_upper_case_globals)]
pub const Cpu: Cpu = Cpu { threads: 0, grain: DEFAULT_GRAIN };

/// Most threads the automatic setting uses.
pub const DEFAULT_MAX_THREADS: usize = 8;

/// Jobs below this many multiply-adds run on the calling thread (waking workers costs more).
pub const DEFAULT_GRAIN: usize = 1 << 16;

impl Default for Cpu {
    fn default() -> Self {
        Cpu
    }
}

impl Cpu {
    /// `threads` threads (the caller included); 0 = automatic.
    pub const fn with_threads(threads: usize) -> Cpu {
        Cpu { threads, grain: DEFAULT_GRAIN }
    }

    /// Split jobs of at least `grain` multiply-adds (tests use 0: every job is split).
    pub const fn with_grain(self, grain: usize) -> Cpu {
        Cpu { grain, ..self }
    }

    /// The threads this backend uses: the setting, or (automatic) the cores, at most
    /// [`DEFAULT_MAX_THREADS`]; never more than the pool can run ([`pool::capacity`]: natively
    /// [`pool::MAX_THREADS`], in wasm the started workers + 1).
    pub fn threads(&self) -> usize {
        let n = if self.threads == 0 { pool::cores().min(DEFAULT_MAX_THREADS) } else { self.threads };
        n.min(pool::capacity()).max(1)
    }

    fn split(&self, w: QWeight) -> CpuWeight {
        CpuWeight::split(w, self.threads())
    }
}

impl Backend for Cpu {
    type Tensor = Tensor;
    /// Weights keep their storage form (f32, f16, bf16, q8, q4); see `qkernels`.
    type Weight = CpuWeight;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn upload(&self, t: Tensor) -> Tensor {
        t
    }

    fn download(&self, t: &Tensor) -> Tensor {
        t.clone()
    }

    /// No: the blocked path holds a block of scores per task, the one-query path a row (see `attention`).
    fn attention_holds_scores(&self) -> bool {
        false
    }

    fn upload_weight(&self, w: Tensor) -> CpuWeight {
        self.split(QWeight::from_tensor(w, WeightDtype::F32))
    }

    fn upload_weight_as(&self, w: Tensor, dtype: WeightDtype) -> CpuWeight {
        self.split(QWeight::from_tensor(w, dtype))
    }

    fn upload_packed(&self, w: QWeight) -> CpuWeight {
        self.split(w)
    }

    fn weight_dtype(&self, w: &CpuWeight) -> WeightDtype {
        w.dtype()
    }

    fn weight_bytes(&self, w: &CpuWeight) -> usize {
        w.bytes()
    }

    /// f32 weights also packed into the GEMM's panels ([`CpuWeight::pack_for_prefill`]).
    fn pack_for_prefill(&self, w: &mut CpuWeight) -> usize {
        w.pack_for_prefill();
        w.panel_bytes()
    }

    fn shape<'a>(&self, t: &'a Tensor) -> &'a [usize] {
        &t.shape
    }

    fn embedding(&self, table: &CpuWeight, ids: &[u32], shape: &[usize]) -> Tensor {
        let d = table.dims().1;
        let mut data = vec![0.0f32; ids.len() * d];
        for (r, &id) in ids.iter().enumerate() {
            table.dequantize_row(id as usize, &mut data[r * d..(r + 1) * d]);
        }
        let mut s = shape.to_vec();
        s.push(d);
        Tensor::new(s, data)
    }

    fn linear(&self, x: &Tensor, w: &CpuWeight) -> Tensor {
        let (m, k) = (x.rows(), x.cols());
        let (n, wk) = w.dims();
        assert_eq!(wk, k, "linear: input has {k} features, weight expects {wk}");
        let mut out = vec![0.0; m * n];
        parallel::linear(self.threads(), self.grain, m, &x.data, w, &mut out);
        let mut shape = x.shape.clone();
        *shape.last_mut().unwrap() = n;
        Tensor::new(shape, out)
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Tensor {
        let d = x.cols();
        let mut out = Vec::with_capacity(x.numel());
        for r in 0..x.rows() {
            let row = x.row(r);
            let var = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let inv = 1.0 / (var + eps).sqrt();
            out.extend(row.iter().zip(&weight.data).map(|(v, w)| w * (v * inv)));
        }
        Tensor::new(x.shape.clone(), out)
    }

    fn round_half(&self, x: &mut Tensor) {
        x.data.iter_mut().for_each(|v| *v = crate::dtype::float16::round_f16(*v));
    }

    fn rms_norm_half(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Tensor {
        let mut out = Vec::with_capacity(x.numel());
        for r in 0..x.rows() {
            crate::dtype::float16::rms_norm_f16_row(x.row(r), &weight.data, eps, &mut out);
        }
        Tensor::new(x.shape.clone(), out)
    }

    fn activate_half(&self, x: &mut Tensor, act: Activation) {
        x.data.iter_mut().for_each(|a| *a = crate::dtype::float16::act_f16(*a, act));
    }

    fn gated_activate_half(&self, gate: &mut Tensor, up: &Tensor, act: Activation) {
        assert_eq!(gate.shape, up.shape);
        gate.data.iter_mut().zip(&up.data).for_each(|(g, u)| *g = crate::dtype::float16::round_f16(crate::dtype::float16::act_f16(*g, act) * u));
    }

    fn clamp_half(&self, x: &mut Tensor) {
        crate::dtype::float16::clamp_f16_inf(&mut x.data);
    }

    fn add_assign(&self, x: &mut Tensor, y: &Tensor) {
        assert_eq!(x.shape, y.shape);
        x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b);
    }

    fn scale(&self, x: &mut Tensor, s: f32) {
        x.data.iter_mut().for_each(|a| *a *= s);
    }

    fn activate(&self, x: &mut Tensor, act: Activation) {
        x.data.iter_mut().for_each(|a| *a = apply_act(*a, act));
    }

    fn gated_activate(&self, gate: &mut Tensor, up: &Tensor, act: Activation) {
        assert_eq!(gate.shape, up.shape);
        gate.data.iter_mut().zip(&up.data).for_each(|(g, u)| *g = apply_act(*g, act) * u);
    }

    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        mask: AttentionMask<'_>,
        s: AttentionShape,
    ) -> Tensor {
        let work = s.batch * s.heads * s.q_len * s.kv_len * s.head_dim * 2;
        let threads = if work < self.grain { 1 } else { self.threads() };
        attention_threads(threads, q, k, v, bias, mask, s, None)
    }

    fn write_seq(&self, dst: &mut Tensor, src: &Tensor, pos: usize) {
        write_seq_host(dst, src, pos);
    }

    fn static_kv(&self) -> bool {
        true
    }

    fn select_batch(&self, x: &Tensor, index: &[usize]) -> Tensor {
        select_batch_host(x, index)
    }

    fn reorder_batch(&self, x: &mut Tensor, index: &[usize], used: usize) {
        reorder_batch_host(x, index, used);
    }

    fn cat_seq(&self, a: &Tensor, b: &Tensor) -> Tensor {
        let (batch, s1, d) = (a.shape[0], a.shape[1], a.shape[2]);
        let s2 = b.shape[1];
        assert_eq!((b.shape[0], b.shape[2]), (batch, d));
        let mut data = Vec::with_capacity((s1 + s2) * batch * d);
        for r in 0..batch {
            data.extend_from_slice(&a.data[r * s1 * d..(r + 1) * s1 * d]);
            data.extend_from_slice(&b.data[r * s2 * d..(r + 1) * s2 * d]);
        }
        Tensor::new(vec![batch, s1 + s2, d], data)
    }

    fn append_seq(&self, mut a: Tensor, b: &Tensor) -> Tensor {
        if a.shape[0] != 1 {
            return self.cat_seq(&a, b);
        }
        // one batch row: the new positions follow the old ones in memory (amortized growth)
        assert_eq!((b.shape[0], b.shape[2]), (1, a.shape[2]));
        a.data.extend_from_slice(&b.data);
        a.shape[1] += b.shape[1];
        a
    }

    fn add_bias(&self, x: &mut Tensor, bias: &Tensor) {
        add_bias_host(x, bias);
    }

    fn tanh(&self, x: &mut Tensor) {
        x.data.iter_mut().for_each(|v| *v = v.tanh());
    }

    fn gather_positions(&self, x: &Tensor, positions: &[usize]) -> Tensor {
        gather_positions_host(x, positions)
    }

    fn last_position(&self, x: &Tensor) -> Tensor {
        let (batch, seq, d) = (x.shape[0], x.shape[1], x.shape[2]);
        let mut data = Vec::with_capacity(batch * d);
        for r in 0..batch {
            let o = (r * seq + seq - 1) * d;
            data.extend_from_slice(&x.data[o..o + d]);
        }
        Tensor::new(vec![batch, 1, d], data)
    }

    fn argmax_rows(&self, x: &Tensor, suppress: &[u32]) -> Vec<u32> {
        let mut cuts: Vec<usize> = suppress.iter().map(|&j| j as usize).collect();
        cuts.sort_unstable();
        cuts.dedup();
        (0..x.rows()).map(|r| argmax_row(x.row(r), &cuts)).collect()
    }
}

/// Index of the largest value of `row` (first one on ties; NaN never wins; if every value is NaN
/// or suppressed, the first one not suppressed, or 0), the sorted indices `suppress` excluded.
/// Two passes that vectorize (the LM head's 32k logits every decode step): the maximum over
/// the runs between suppressed indices, 16 lanes at a time, then its first occurrence.
fn argmax_row(row: &[f32], suppress: &[usize]) -> u32 {
    // the runs of `row` between suppressed indices, with their offsets
    let runs = || {
        let mut start = 0;
        suppress.iter().copied().chain(std::iter::once(row.len())).filter_map(move |cut| {
            let cut = cut.min(row.len());
            let run = (cut >= start).then(|| (start, &row[start..cut]));
            start = start.max(cut + 1);
            run
        })
    };
    let mut lanes = [f32::NEG_INFINITY; 16];
    for (_, run) in runs() {
        let chunks = run.chunks_exact(16);
        for &v in chunks.remainder() {
            if v > lanes[0] {
                lanes[0] = v;
            }
        }
        for c in chunks {
            for (m, &v) in lanes.iter_mut().zip(c) {
                // NaN compares false: skipped
                if v > *m {
                    *m = v;
                }
            }
        }
    }
    let max = lanes.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let first = runs().find_map(|(o, run)| run.iter().position(|&v| v == max).map(|p| o + p));
    first.or_else(|| runs().find(|(_, run)| !run.is_empty()).map(|(o, _)| o)).unwrap_or(0) as u32
}

/// `dst[b, pos..pos + q, :] = src[b, .., :]` for `dst` `[batch, capacity, d]`, `src` `[batch, q, d]`.
/// `x[r, :] += bias` for every row (the reference of [`Backend::add_bias`]).
pub fn add_bias_host(x: &mut Tensor, bias: &Tensor) {
    let n = bias.numel();
    assert!(n > 0 && x.cols() == n, "bias of {n} values on rows of {}", x.cols());
    x.data.chunks_exact_mut(n).for_each(|row| row.iter_mut().zip(&bias.data).for_each(|(a, b)| *a += b));
}

/// `[batch, seq, d]` → `[batch, d]`, row `b` at position `positions[b]` (the reference of [`Backend::gather_positions`]).
pub fn gather_positions_host(x: &Tensor, positions: &[usize]) -> Tensor {
    let (batch, seq, d) = (x.shape[0], x.shape[1], x.shape[2]);
    assert_eq!(positions.len(), batch, "one position per batch row");
    let mut data = Vec::with_capacity(batch * d);
    for (r, &p) in positions.iter().enumerate() {
        assert!(p < seq, "position {p} outside a sequence of {seq}");
        let o = (r * seq + p) * d;
        data.extend_from_slice(&x.data[o..o + d]);
    }
    Tensor::new(vec![batch, d], data)
}

pub fn write_seq_host(dst: &mut Tensor, src: &Tensor, pos: usize) {
    let (batch, cap, d) = (dst.shape[0], dst.shape[1], dst.shape[2]);
    let q = src.shape[1];
    assert_eq!((src.shape[0], src.shape[2]), (batch, d), "write_seq: shapes");
    assert!(pos + q <= cap, "write_seq: {pos} + {q} positions exceed the capacity {cap}");
    for b in 0..batch {
        let o = (b * cap + pos) * d;
        dst.data[o..o + q * d].copy_from_slice(&src.data[b * q * d..(b + 1) * q * d]);
    }
}

/// `out[i] = x[index[i]]` along the first dimension.
pub fn select_batch_host(x: &Tensor, index: &[usize]) -> Tensor {
    let row = x.numel() / x.shape[0].max(1);
    let mut data = Vec::with_capacity(index.len() * row);
    for &i in index {
        data.extend_from_slice(&x.data[i * row..(i + 1) * row]);
    }
    let mut shape = x.shape.clone();
    shape[0] = index.len();
    Tensor::new(shape, data)
}

/// `x[i] = x[index[i]]` along the first dimension, in place: rows nobody still needs are
/// overwritten first; what is left are cycles, each rotated through one scratch row (allocated
/// only when a cycle exists). For a 3-D `x` only the first `used` positions of dimension 1 move.
pub fn reorder_batch_host(x: &mut Tensor, index: &[usize], used: usize) {
    let n = x.shape[0];
    assert_eq!(index.len(), n, "reorder_batch: one index per batch row");
    let stride = x.numel() / n.max(1);
    let row = if x.shape.len() == 3 { used.min(x.shape[1]) * x.shape[2] } else { stride };
    // readers[r]: pending rows that still have to copy row r
    let mut readers = vec![0usize; n];
    let mut pending: Vec<bool> = (0..n).map(|i| index[i] != i).collect();
    for i in 0..n {
        if pending[i] {
            readers[index[i]] += 1;
        }
    }
    let mut stack: Vec<usize> = (0..n).filter(|&i| pending[i] && readers[i] == 0).collect();
    while let Some(i) = stack.pop() {
        let s = index[i];
        x.data.copy_within(s * stride..s * stride + row, i * stride);
        pending[i] = false;
        readers[s] -= 1;
        if readers[s] == 0 && pending[s] {
            stack.push(s);
        }
    }
    // remaining: disjoint cycles i -> index[i] -> ...
    let mut scratch: Vec<f32> = Vec::new();
    for start in 0..n {
        if !pending[start] {
            continue;
        }
        scratch.clear();
        scratch.extend_from_slice(&x.data[start * stride..start * stride + row]);
        let mut i = start;
        loop {
            let s = index[i];
            pending[i] = false;
            if s == start {
                x.data[i * stride..i * stride + row].copy_from_slice(&scratch);
                break;
            }
            x.data.copy_within(s * stride..s * stride + row, i * stride);
            i = s;
        }
    }
}

#[cfg(test)]
mod reorder_tests {
    use super::*;

    #[test]
    fn reorder_matches_gather() {
        let cases: Vec<Vec<usize>> = vec![
            vec![0, 1, 2, 3],
            vec![0, 0, 0, 0],
            vec![1, 0, 3, 2],
            vec![3, 0, 1, 2],
            vec![2, 2, 0, 1],
            vec![1, 1, 3, 3],
            vec![3, 3, 3, 0],
        ];
        for index in cases {
            let x = Tensor::new(vec![4, 2, 3], (0..24).map(|v| v as f32).collect());
            let want = select_batch_host(&x, &index);
            let mut got = x.clone();
            reorder_batch_host(&mut got, &index, 2);
            assert_eq!(got, want, "index {index:?}");
            // only the first position of each row moves
            let mut part = x.clone();
            reorder_batch_host(&mut part, &index, 1);
            for b in 0..4 {
                assert_eq!(part.data[b * 6..b * 6 + 3], want.data[b * 6..b * 6 + 3]);
                assert_eq!(part.data[b * 6 + 3..b * 6 + 6], x.data[b * 6 + 3..b * 6 + 6]);
            }
        }
    }
}

#[cfg(test)]
mod argmax_tests {
    use super::*;

    /// The plain one-pass definition [`argmax_row`] must agree with.
    fn reference(row: &[f32], suppress: &[u32]) -> u32 {
        let mut best: Option<usize> = None;
        for (j, &v) in row.iter().enumerate() {
            if suppress.contains(&(j as u32)) {
                continue;
            }
            match best {
                None => best = Some(j),
                Some(b) if v > row[b] || (row[b].is_nan() && !v.is_nan()) => best = Some(j),
                _ => {}
            }
        }
        best.unwrap_or(0) as u32
    }

    #[test]
    fn argmax_matches_the_reference() {
        // through the backend: two rows, the suppressed ids unsorted and repeated
        let t = Tensor::new(vec![2, 4], vec![1.0, 5.0, 5.0, 2.0, 7.0, 0.0, 7.0, 9.0]);
        assert_eq!(Cpu.argmax_rows(&t, &[3, 1, 3]), vec![2, 0]);
        let lens = [0usize, 1, 5, 16, 17, 40, 100];
        let suppressions: [&[u32]; 5] = [&[], &[0], &[3, 1, 3], &[15, 16, 39], &[0, 1, 2, 3, 4, 200]];
        for &len in &lens {
            for variant in 0..6 {
                let row: Vec<f32> = (0..len)
                    .map(|i| match variant {
                        0 => ((i * 37 % 23) as f32 - 11.0) * 0.5,
                        1 => (i % 3) as f32,                                          // ties
                        2 => if i % 4 == 0 { f32::NAN } else { -((i * 7 % 13) as f32) }, // NaN
                        3 => f32::NAN,
                        4 => if i % 2 == 0 { -0.0 } else { 0.0 },
                        _ => f32::NEG_INFINITY,
                    })
                    .collect();
                for sup in suppressions {
                    let mut cuts: Vec<usize> = sup.iter().map(|&j| j as usize).collect();
                    cuts.sort_unstable();
                    cuts.dedup();
                    assert_eq!(argmax_row(&row, &cuts), reference(&row, sup), "len {len} variant {variant} suppress {sup:?}");
                }
            }
        }
    }
}
