//! Attention and the KV cache: `attention` (`shaders/attention.wgsl`), the in-place growing cache
//! (`cat_seq`), `last_position`, and the batch gathers of beam search (`select_batch`, `reorder_batch`).

use t5_core::backend::{AttentionMask, AttentionShape};

use crate::kernels::{KernelKey, Params};
use crate::{Gpu, GpuTensor};

/// Parameters of `shaders/attention.wgsl`.
struct AttentionParams {
    heads: u32,
    head_dim: u32,
    q_len: u32,
    kv_len: u32,
    /// causal offset (`None`: every key visible)
    causal: Option<u32>,
    bias: bool,
    key_mask: bool,
    half: bool,
    /// positions per batch row of the K / V buffers (a cache's capacity)
    kv_bstride: u32,
}

impl Params for AttentionParams {
    fn words(&self) -> [u32; 8] {
        let flags = self.bias as u32 | (self.key_mask as u32) << 1 | (self.half as u32) << 2;
        [self.heads, self.head_dim, self.q_len, self.kv_len, self.causal.unwrap_or(u32::MAX), flags, self.kv_bstride, 0]
    }
}

/// Parameters of `shaders/gather_rows.wgsl`: `out[b, :] = x[b * stride + offset, :]`.
struct GatherParams {
    batch: u32,
    d: u32,
    stride: u32,
    offset: u32,
}

impl Params for GatherParams {
    fn words(&self) -> [u32; 8] {
        [self.batch, self.d, self.stride, self.offset, 0, 0, 0, 0]
    }
}

impl Gpu {
    pub(crate) fn attention_op(&self, q: &GpuTensor, k: &GpuTensor, v: &GpuTensor, bias: Option<&GpuTensor>, mask: AttentionMask<'_>, s: AttentionShape) -> GpuTensor {
        if let Some(bias) = bias {
            s.check_bias_len(bias.numel());
        }
        let out = self.tensor(vec![s.batch, s.q_len, s.heads * s.head_dim]);
        let scores = self.alloc((s.batch * s.heads * s.q_len * s.kv_len).max(1) as u64 * 4);
        let mb = mask.key_mask.map(|m| self.upload_mask(m));
        let kv_bstride = if k.shape.len() == 3 { k.seq_cap } else { s.kv_len };
        assert_eq!(if v.shape.len() == 3 { v.seq_cap } else { s.kv_len }, kv_bstride, "K and V caches differ in capacity");
        let params = AttentionParams {
            heads: s.heads as u32,
            head_dim: s.head_dim as u32,
            q_len: s.q_len as u32,
            kv_len: s.kv_len as u32,
            causal: mask.causal_offset.map(|o| o as u32),
            bias: bias.is_some(),
            key_mask: mb.is_some(),
            half: s.half,
            kv_bstride: kv_bstride as u32,
        };
        let dummy = &self.inner.dummy;
        self.dispatch(
            KernelKey::Attention,
            &params,
            &[q.buf.raw(), k.buf.raw(), v.buf.raw(), bias.map_or(dummy, |b| b.buf.raw()), mb.as_ref().map_or(dummy, |m| m.raw()), scores.raw(), out.buf.raw()],
            (s.q_len as u32, s.heads as u32, s.batch as u32),
        );
        out
    }

    pub(crate) fn cat_seq_op(&self, a: &GpuTensor, b: &GpuTensor) -> GpuTensor {
        let (batch, s1, d) = (a.shape[0], a.shape[1], a.shape[2]);
        let s2 = b.shape[1];
        assert_eq!((b.shape[0], b.shape[2]), (batch, d));
        assert!(b.contiguous());
        let total = s1 + s2;
        let row = d as u64 * 4;
        // in place: `a` is the newest view of a cache buffer with room left
        // (a plain tensor has seq_cap == s1 < total, so only a cache buffer qualifies)
        if a.seq_cap >= total && a.buf.used_seq.get() == s1 {
            for r in 0..batch {
                self.copy(b.buf.raw(), (r * s2) as u64 * row, a.buf.raw(), (r * a.seq_cap + s1) as u64 * row, s2 as u64 * row);
            }
            a.buf.used_seq.set(total);
            return GpuTensor { buf: a.buf.clone(), shape: vec![batch, total, d], seq_cap: a.seq_cap };
        }
        let hint = self.inner.kv_capacity.get();
        let cap = if hint >= total { hint } else { 2 * total };
        let buf = self.alloc((batch * cap * d) as u64 * 4);
        for r in 0..batch {
            self.copy(a.buf.raw(), (r * a.seq_cap) as u64 * row, buf.raw(), (r * cap) as u64 * row, s1 as u64 * row);
            self.copy(b.buf.raw(), (r * s2) as u64 * row, buf.raw(), (r * cap + s1) as u64 * row, s2 as u64 * row);
        }
        buf.used_seq.set(total);
        GpuTensor { buf, shape: vec![batch, total, d], seq_cap: cap }
    }

    pub(crate) fn last_position_op(&self, x: &GpuTensor) -> GpuTensor {
        let (batch, seq, d) = (x.shape[0], x.shape[1], x.shape[2]);
        let out = self.tensor(vec![batch, 1, d]);
        let gx = (d as u32).div_ceil(64).min(64);
        let params = GatherParams { batch: batch as u32, d: d as u32, stride: x.seq_cap as u32, offset: seq as u32 - 1 };
        self.dispatch(KernelKey::GatherRows, &params, &[x.buf.raw(), out.buf.raw()], (gx, batch as u32, 1));
        out
    }

    /// `[batch, seq, d]` → `[batch, d]`, row `b` at position `positions[b]` (one buffer copy per row).
    pub(crate) fn gather_positions_op(&self, x: &GpuTensor, positions: &[usize]) -> GpuTensor {
        let (batch, seq, d) = (x.shape[0], x.shape[1], x.shape[2]);
        assert_eq!(positions.len(), batch, "one position per batch row");
        let out = self.tensor(vec![batch, d]);
        for (b, &p) in positions.iter().enumerate() {
            assert!(p < seq, "position {p} outside a sequence of {seq}");
            self.copy(x.buf.raw(), ((b * x.seq_cap + p) * d) as u64 * 4, out.buf.raw(), (b * d) as u64 * 4, d as u64 * 4);
        }
        out
    }

    /// Batch rows `index` of `x` into a new tensor by buffer copies (rows of a KV-cache view: its
    /// positions written so far, at the cache's stride).
    fn gather_batch(&self, x: &GpuTensor, index: &[usize], seq_cap: usize) -> GpuTensor {
        let per_row = x.numel() / x.shape[0].max(1);
        let (src_stride, out) = if x.shape.len() == 3 {
            let d = x.shape[2];
            let buf = self.alloc((index.len() * seq_cap * d) as u64 * 4);
            buf.used_seq.set(x.buf.used_seq.get());
            (x.seq_cap * d, GpuTensor { buf, shape: [vec![index.len()], x.shape[1..].to_vec()].concat(), seq_cap })
        } else {
            (per_row, self.tensor([vec![index.len()], x.shape[1..].to_vec()].concat()))
        };
        let dst_stride = if x.shape.len() == 3 { seq_cap * x.shape[2] } else { per_row };
        for (i, &j) in index.iter().enumerate() {
            self.copy(x.buf.raw(), (j * src_stride) as u64 * 4, out.buf.raw(), (i * dst_stride) as u64 * 4, per_row as u64 * 4);
        }
        out
    }

    pub(crate) fn select_batch_op(&self, x: &GpuTensor, index: &[usize]) -> GpuTensor {
        let cap = if x.shape.len() == 3 { x.shape[1] } else { 0 };
        self.gather_batch(x, index, cap)
    }

    pub(crate) fn reorder_batch_op(&self, x: &mut GpuTensor, index: &[usize], used: usize) {
        // a fresh buffer of the same capacity: rows are read before any is overwritten
        let mut view = x.clone();
        if view.shape.len() == 3 {
            view.shape[1] = used.min(view.shape[1]);
        }
        let mut out = self.gather_batch(&view, index, x.seq_cap);
        out.shape = x.shape.clone();
        *x = out;
    }
}
