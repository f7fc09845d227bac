//! The backend interface: the few operations a T5 forward pass needs. Model code is written
//! against this trait only and never knows which device runs it; a backend keeps tensors and
//! weights in whatever resident form suits it (host `Vec<f32>` on the CPU, GPU buffers later).
//!
//! Conventions: activations are `[rows, cols]` matrices whose rows are `batch * seq` positions
//! (shape kept as `[batch, seq, cols]`); linear weights are stored as transformers stores them,
//! `[out_features, in_features]`.

pub mod cpu;

use crate::config::Activation;
use crate::dtype::{QWeight, WeightDtype};
use crate::tensor::Tensor;

/// Which keys each query may attend to.
#[derive(Debug, Clone, Copy)]
pub struct AttentionMask<'a> {
    /// `[batch, key_len]`, 1 = attend, 0 = padding. `None`: all keys visible.
    pub key_mask: Option<&'a [u32]>,
    /// Causal masking: query `i` (absolute position `offset + i`) sees keys `j <= offset + i`.
    pub causal_offset: Option<usize>,
}

/// Shapes of one multi-head attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub q_len: usize,
    pub kv_len: usize,
    /// float16 activations ([`crate::model::Half`]): the scores, the biased scores and the probabilities are
    /// rounded to float16 as in transformers' float16 eager attention (softmax computed in f32 in between).
    pub half: bool,
}

impl AttentionShape {
    /// Where the position bias of head `h`, query `i` starts in the bias's diagonal form `[heads,
    /// q_len + kv_len - 1]` (its `kv_len` values follow): the bias of query `i` and key `j` depends
    /// on `j - i` only and sits at column `j - i + q_len - 1` ([`bias_diagonals`]).
    pub fn bias_row(&self, h: usize, i: usize) -> usize {
        h * bias_diagonals(self.q_len, self.kv_len) + self.q_len - 1 - i
    }

    /// Panics unless a position bias of `len` values is the diagonal form for this shape
    /// (`heads · (q_len + kv_len - 1)`): a bias in another layout would be read as wrong values.
    pub fn check_bias_len(&self, len: usize) {
        assert_eq!(len, self.heads * bias_diagonals(self.q_len, self.kv_len), "attention: the position bias is [heads, q_len + kv_len - 1] (its diagonal form)");
    }
}

/// Columns of the position bias in its diagonal form for `q_len` queries and `kv_len` keys:
/// `q_len + kv_len - 1`, one per distance `j - i` (0 when either is 0).
pub fn bias_diagonals(q_len: usize, kv_len: usize) -> usize {
    if q_len == 0 || kv_len == 0 {
        0
    } else {
        q_len + kv_len - 1
    }
}

pub trait Backend {
    /// An activation tensor resident on the device.
    type Tensor: Clone;
    /// A linear weight (or embedding table) resident on the device, `[out, in]`.
    type Weight;

    fn name(&self) -> &'static str;

    fn upload(&self, t: Tensor) -> Self::Tensor;
    fn download(&self, t: &Self::Tensor) -> Tensor;
    fn upload_weight(&self, w: Tensor) -> Self::Weight;
    /// Upload an f32 weight converted to the storage form `dtype` (fp16 / bf16 / q8 / q4). A backend
    /// without that form may keep the rounded / quantized values dequantized (the default).
    fn upload_weight_as(&self, w: Tensor, dtype: WeightDtype) -> Self::Weight {
        match dtype {
            WeightDtype::F32 => self.upload_weight(w),
            d => self.upload_packed(QWeight::from_tensor(w, d)),
        }
    }
    /// Upload a weight already in a storage form (a pre-quantized checkpoint).
    fn upload_packed(&self, w: QWeight) -> Self::Weight {
        self.upload_weight(w.to_tensor())
    }
    /// The storage form a weight is resident in.
    fn weight_dtype(&self, _w: &Self::Weight) -> WeightDtype {
        WeightDtype::F32
    }
    /// Keep a weight that multiplies many rows on every call (the encoder's, cross-attention K/V's)
    /// also in a layout that makes those products faster; results must not change by a bit.
    /// Returns the bytes that second layout holds (not in [`Self::weight_bytes`], which is the
    /// storage form's). Default: nothing, 0.
    fn pack_for_prefill(&self, _w: &mut Self::Weight) -> usize {
        0
    }
    /// Resident bytes of a weight (0 when unknown).
    fn weight_bytes(&self, _w: &Self::Weight) -> usize {
        0
    }
    fn shape<'a>(&self, t: &'a Self::Tensor) -> &'a [usize];

    /// Rows of `table` (`[vocab, d]`) for `ids`, shaped `shape + [d]`.
    fn embedding(&self, table: &Self::Weight, ids: &[u32], shape: &[usize]) -> Self::Tensor;
    /// `x @ w^T`: `[.., in]` → `[.., out]`.
    fn linear(&self, x: &Self::Tensor, w: &Self::Weight) -> Self::Tensor;
    /// T5's layer norm: `x * rsqrt(mean(x^2) + eps) * weight` (no mean subtraction, no bias).
    fn rms_norm(&self, x: &Self::Tensor, weight: &Self::Tensor, eps: f32) -> Self::Tensor;
    /// `x += y` (residual connections).
    fn add_assign(&self, x: &mut Self::Tensor, y: &Self::Tensor);
    /// `x *= s`.
    fn scale(&self, x: &mut Self::Tensor, s: f32);
    /// `act(x)` in place.
    fn activate(&self, x: &mut Self::Tensor, act: Activation);
    /// `act(gate) * up`, the gated feed-forward of T5 v1.1, in place into `gate`.
    fn gated_activate(&self, gate: &mut Self::Tensor, up: &Self::Tensor, act: Activation);
    /// T5 attention (no `1/sqrt(d)` scaling): `softmax(q k^T + bias + mask) v` per head.
    /// q: `[batch, q_len, heads*head_dim]`, k/v: `[batch, kv_len, heads*head_dim]`,
    /// bias: `[heads, q_len + kv_len - 1]` shared over the batch, the diagonal form ([`AttentionShape::bias_row`]),
    /// or `None` (cross-attention).
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        mask: AttentionMask<'_>,
        shape: AttentionShape,
    ) -> Self::Tensor;
    /// Whether [`Backend::attention`] holds every score of a call (`[batch, heads, q_len, kv_len]`) at once: the
    /// call-time memory budget ([`crate::budget`]) counts them where it does. Default: yes (an upper bound).
    fn attention_holds_scores(&self) -> bool {
        true
    }
    /// [`Backend::attention`] that also returns the attention probabilities, `[batch, heads, q_len, kv_len]` on the
    /// host (transformers' `output_attentions`; masked keys get 0). Only called when they are asked for, so the hot
    /// path never pays for them; the default computes on the host.
    fn attention_with_probs(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        mask: AttentionMask<'_>,
        shape: AttentionShape,
    ) -> (Self::Tensor, Tensor) {
        let (q, k, v) = (self.download(q), self.download(k), self.download(v));
        let bias = bias.map(|b| self.download(b));
        let mut probs = vec![0.0f32; shape.batch * shape.heads * shape.q_len * shape.kv_len];
        let out = cpu::attention_host(&q, &k, &v, bias.as_ref(), mask, shape, Some(&mut probs));
        (self.upload(out), Tensor::new(vec![shape.batch, shape.heads, shape.q_len, shape.kv_len], probs))
    }
    /// Concatenate `[batch, s1, d]` and `[batch, s2, d]` along the sequence (KV cache growth).
    fn cat_seq(&self, a: &Self::Tensor, b: &Self::Tensor) -> Self::Tensor;
    /// [`Backend::cat_seq`] taking `a` by value (the growing KV cache), so a backend may append in
    /// place instead of copying the whole cache every decoder step.
    fn append_seq(&self, a: Self::Tensor, b: &Self::Tensor) -> Self::Tensor {
        self.cat_seq(&a, b)
    }
    /// Write `src` (`[batch, q, d]`) into the preallocated `dst` (`[batch, capacity, d]`) at sequence
    /// positions `pos..pos + q`, in place (the static KV cache). Needs [`Backend::static_kv`].
    fn write_seq(&self, dst: &mut Self::Tensor, src: &Self::Tensor, pos: usize) {
        let (mut d, s) = (self.download(dst), self.download(src));
        cpu::write_seq_host(&mut d, &s, pos);
        *dst = self.upload(d);
    }
    /// Whether [`Backend::attention`] accepts keys/values holding more positions per batch row than
    /// `kv_len` (a preallocated static cache: only the first `kv_len` of each row are read).
    fn static_kv(&self) -> bool {
        false
    }
    /// Batch rows of `x` (`[batch, ...]`) picked by `index`: `out[i] = x[index[i]]` (beam expansion).
    fn select_batch(&self, x: &Self::Tensor, index: &[usize]) -> Self::Tensor {
        self.upload(cpu::select_batch_host(&self.download(x), index))
    }
    /// `x[i] = x[index[i]]` for every batch row at once, in place (beam reordering of a KV cache);
    /// for `x` of shape `[batch, len, d]` only positions `..used` of each row are moved (a static
    /// cache holds `used` of its `len` positions).
    fn reorder_batch(&self, x: &mut Self::Tensor, index: &[usize], used: usize) {
        let mut t = self.download(x);
        cpu::reorder_batch_host(&mut t, index, used);
        *x = self.upload(t);
    }
    /// Round every value to float16 in place (nearest even; beyond the float16 range ±inf): a tensor that
    /// transformers holds in float16 under `dtype=torch.float16` ([`crate::model::Half`]). Only called in
    /// that mode.
    fn round_half(&self, x: &mut Self::Tensor) {
        let mut t = self.download(x);
        t.data.iter_mut().for_each(|v| *v = crate::dtype::float16::round_f16(*v));
        *x = self.upload(t);
    }
    /// [`Backend::rms_norm`] in float16 mode ([`crate::dtype::float16::rms_norm_f16_row`]: both products rounded).
    fn rms_norm_half(&self, x: &Self::Tensor, weight: &Self::Tensor, eps: f32) -> Self::Tensor {
        let (t, w) = (self.download(x), self.download(weight));
        let mut out = Vec::with_capacity(t.data.len());
        for r in 0..t.rows() {
            crate::dtype::float16::rms_norm_f16_row(t.row(r), &w.data, eps, &mut out);
        }
        self.upload(Tensor::new(t.shape.clone(), out))
    }
    /// [`Backend::activate`] in float16 mode ([`crate::dtype::float16::act_f16`]).
    fn activate_half(&self, x: &mut Self::Tensor, act: Activation) {
        let mut t = self.download(x);
        t.data.iter_mut().for_each(|v| *v = crate::dtype::float16::act_f16(*v, act));
        *x = self.upload(t);
    }
    /// [`Backend::gated_activate`] in float16 mode: `round(act_f16(gate) * up)`.
    fn gated_activate_half(&self, gate: &mut Self::Tensor, up: &Self::Tensor, act: Activation) {
        let (mut g, u) = (self.download(gate), self.download(up));
        g.data.iter_mut().zip(&u.data).for_each(|(a, b)| *a = crate::dtype::float16::round_f16(crate::dtype::float16::act_f16(*a, act) * b));
        *gate = self.upload(g);
    }
    /// T5Block's float16 clamp in place: when any value of the tensor is ±inf, clamp every value to
    /// ±(65504 - 1000) ([`crate::dtype::float16::clamp_f16_inf`]). Only called in [`crate::model::Half::Guarded`] mode.
    fn clamp_half(&self, x: &mut Self::Tensor) {
        let mut t = self.download(x);
        crate::dtype::float16::clamp_f16_inf(&mut t.data);
        *x = self.upload(t);
    }
    /// `x[r, :] += bias` for every row of `x` (`bias`: `[cols]`), in place (the heads' projection biases).
    fn add_bias(&self, x: &mut Self::Tensor, bias: &Self::Tensor) {
        let (mut t, b) = (self.download(x), self.download(bias));
        cpu::add_bias_host(&mut t, &b);
        *x = self.upload(t);
    }
    /// `tanh(x)` in place (the sequence-classification head's activation).
    fn tanh(&self, x: &mut Self::Tensor) {
        let mut t = self.download(x);
        t.data.iter_mut().for_each(|v| *v = v.tanh());
        *x = self.upload(t);
    }
    /// Rows `[batch, seq, d]` → `[batch, d]` taking position `positions[b]` of each batch row `b` (the
    /// sequence-classification head reads the decoder at each row's last EOS).
    fn gather_positions(&self, x: &Self::Tensor, positions: &[usize]) -> Self::Tensor {
        self.upload(cpu::gather_positions_host(&self.download(x), positions))
    }
    /// Rows `[batch, seq, d]` → `[batch, 1, d]` taking position `seq - 1` of each batch row.
    fn last_position(&self, x: &Self::Tensor) -> Self::Tensor;
    /// Index of the largest value of each row (first one on ties, as torch.argmax; NaN never wins), the
    /// `suppress` ids excluded (as if -inf: EOS under min-length).
    fn argmax_rows(&self, x: &Self::Tensor, suppress: &[u32]) -> Vec<u32>;
    /// Whether generation should reduce each step's logits on the device ([`Backend::top_k_rows`]) rather than
    /// read whole rows: true where reading them is a device-to-host transfer (a GPU).
    fn reduces_on_device(&self) -> bool {
        false
    }
    /// The `k` largest values of each row with their ids, each row's max and Σexp(x − max), and the values at
    /// the ids `gather` names (`[rows, g]`, see [`TopKRows`]), in one read; the default reads the rows and reduces
    /// them on the host.
    fn top_k_rows(&self, x: &Self::Tensor, k: usize, suppress: &[u32], gather: &[u32]) -> TopKRows {
        TopKRows::from_host(&self.download(x), k, suppress, gather)
    }
}

/// The `k` largest logits of each row and what a log-softmax of the whole row needs: what a device hands
/// back to generation (beam search, top-k sampling) instead of `[rows, vocab]` logits.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKRows {
    pub k: usize,
    /// `[rows, k]`: the largest values first, the lower id first on ties; the suppressed ids and NaN never
    /// appear. A row with fewer than `k` candidates ends in ids `u32::MAX` (value -inf).
    pub values: Vec<f32>,
    pub ids: Vec<u32>,
    /// per row, over the whole row (suppressed ids included, NaN skipped): the largest value and
    /// Σ exp(x − max) (0 when the row is all -inf): the normaliser of a log-softmax taken before the processors
    pub max: Vec<f32>,
    pub sum_exp: Vec<f64>,
    /// per row, over the ids neither suppressed nor gathered (NaN skipped): Σ exp(x − v₀), `v₀` the row's first
    /// candidate (the largest value not suppressed); 0 when the row has no finite candidate: the mass the processors
    /// leave as it is (min-length sets the suppressed ids to -inf, the others change only gathered ids), measured
    /// without the ids whose mass the host moves (top-p's tail, [`crate::generate::nucleus`])
    pub kept_sum_exp: Vec<f64>,
    /// `[rows, g]`: the value of row `r` at id `gather[r * g + j]` (the ids a logits processor may change,
    /// whatever their rank); -inf where the id is `u32::MAX` (padding) or outside the row.
    pub gathered: Vec<f32>,
    /// the ids gathered, `[rows, g]`
    pub gather: Vec<u32>,
}

impl TopKRows {
    /// No rows yet, with room for `rows` rows of `k` candidates and the values of the ids `gather` names;
    /// a reduction pushes each row's fields.
    pub fn empty(rows: usize, k: usize, gather: Vec<u32>) -> TopKRows {
        TopKRows {
            k,
            values: Vec::with_capacity(rows * k),
            ids: Vec::with_capacity(rows * k),
            max: Vec::with_capacity(rows),
            sum_exp: Vec::with_capacity(rows),
            kept_sum_exp: Vec::with_capacity(rows),
            gathered: Vec::with_capacity(gather.len()),
            gather,
        }
    }

    /// The host reduction (the reference the device kernels follow; the sum in f64 as
    /// [`crate::generate::processors::log_softmax_rows`] sums).
    pub fn from_host(x: &Tensor, k: usize, suppress: &[u32], gather: &[u32]) -> TopKRows {
        let rows = x.rows();
        let g = gather_width(gather.len(), rows);
        let mut out = TopKRows::empty(rows, k, gather.to_vec());
        for r in 0..rows {
            let row = x.row(r);
            out.gathered.extend(gather[r * g..(r + 1) * g].iter().map(|&i| row.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY)));
            let max = row.iter().cloned().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = if max == f32::NEG_INFINITY { 0.0 } else { row.iter().filter(|v| !v.is_nan()).map(|&v| ((v - max) as f64).exp()).sum() };
            out.max.push(max);
            out.sum_exp.push(sum);
            let idx: Vec<u32> = (0..row.len() as u32).filter(|j| !row[*j as usize].is_nan() && !suppress.contains(j)).collect();
            let kept_max = idx.iter().map(|&j| row[j as usize]).fold(f32::NEG_INFINITY, f32::max);
            let gathered = &gather[r * g..(r + 1) * g];
            let kept = idx.iter().filter(|j| !gathered.contains(j));
            out.kept_sum_exp.push(if kept_max == f32::NEG_INFINITY { 0.0 } else { kept.map(|&j| ((row[j as usize] - kept_max) as f64).exp()).sum() });
            let mut idx = idx;
            let cmp = |a: &u32, b: &u32| row[*b as usize].partial_cmp(&row[*a as usize]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(b));
            let n = k.min(idx.len());
            if n > 0 && n < idx.len() {
                idx.select_nth_unstable_by(n - 1, cmp);
            }
            idx.truncate(n);
            idx.sort_by(cmp);
            for j in 0..k {
                match idx.get(j) {
                    Some(&i) => {
                        out.values.push(row[i as usize]);
                        out.ids.push(i);
                    }
                    None => {
                        out.values.push(f32::NEG_INFINITY);
                        out.ids.push(u32::MAX);
                    }
                }
            }
        }
        out
    }

    /// Ids gathered per row (`gathered.len() / rows`).
    pub fn gather_width(&self) -> usize {
        gather_width(self.gathered.len(), self.max.len())
    }
}

/// `g` of a `[rows, g]` gather list (0 for no rows).
pub fn gather_width(len: usize, rows: usize) -> usize {
    if rows == 0 { 0 } else { len / rows }
}
