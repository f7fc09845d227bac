//! Weight storage forms and quantization (load-time and pre-quantized checkpoints).
//!
//! * `q4`: torchao's int4 weight-only scheme (`Int4WeightOnlyConfig`, the tinygemm affine form):
//!   groups of [`Q4_GROUP`] = 128 along the input dimension, asymmetric, round to nearest (ties to
//!   even, as `torch.round`), codes 0..=15, a float scale and a float zero point per group:
//!   `scale = max((max - min) / 15, 1e-6)`, `zero = min + 8 * scale`,
//!   `q = clamp(round((w - (zero - 8 * scale)) / scale), 0, 15)`, `w' = (q - 8) * scale + zero`.
//!   All arithmetic in f32 on the f32 (upcast) weights, scales and zeros kept in f32.
//! * `q8`: torchao's int8 weight-only scheme (`Int8WeightOnlyConfig`): symmetric, one scale per
//!   output channel (row), `scale = max(max(|w|) / 127.5, f32::EPSILON)`,
//!   `q = clamp(round(w * (1 / scale)), -128, 127)`, `w' = q * scale`. Per channel rather than per
//!   group: at 8 bits the per-row error is already far below the fp32 noise of the tests, one scale
//!   per row factors out of the dot product (the kernel multiplies once per output), costs 4 bytes per
//!   row instead of per 32–128 weights, and works for every input dimension (no fallback needed).
//! * `fp16` / `bf16`: round to nearest even; `fp16` keeps T5's feed-forward `wo` in fp32 as
//!   transformers does (`_keep_in_fp32_modules = ["wo"]`). Activations stay f32 (weight-only fp16),
//!   unless the model is loaded with float16 activations ([`crate::model::Half`], transformers'
//!   `from_pretrained(dtype=torch.float16)` numerics: activations rounded to float16 where transformers
//!   holds them in float16, T5Block's inf clamp, [`round_f16`] / [`clamp_f16_inf`]).
//!
//! Layers whose input dimension is not a multiple of 128 fall back from `q4` to `q8` (reported by
//! the loader). Packed q4 layout (memory and file): row-major `[n, k / 2]` bytes; within each
//! 64-weight chunk `c` of a row, byte `c * 32 + i` holds weight `c * 64 + i` in its low nibble and
//! weight `c * 64 + 32 + i` in its high nibble (so SIMD kernels unpack 32 consecutive weights with
//! one mask and one shift).

use crate::error::{Result, T5Error};
use crate::tensor::Tensor;

/// q4 group size along the input dimension (torchao's default).
pub const Q4_GROUP: usize = 128;
/// torchao `Int4WeightOnlyConfig` (tinygemm / Int4CPULayout) minimum scale.
pub const Q4_EPS: f32 = 1e-6;

/// The storage form of linear weights requested at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum WeightDtype {
    #[default]
    F32,
    F16,
    BF16,
    Q8,
    Q4,
}

impl WeightDtype {
    /// `"fp32" | "fp16" | "bf16" | "q8" | "q4"` (also `float32`, `float16`, `bfloat16`, `int8`, `int4`).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => WeightDtype::F32,
            "fp16" | "f16" | "float16" | "half" => WeightDtype::F16,
            "bf16" | "bfloat16" => WeightDtype::BF16,
            "q8" | "int8" => WeightDtype::Q8,
            "q4" | "int4" => WeightDtype::Q4,
            other => {
                return Err(T5Error::BadInput(format!("unknown dtype {other:?}: expected \"fp32\", \"fp16\", \"bf16\", \"q8\" or \"q4\"")))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "fp32",
            WeightDtype::F16 => "fp16",
            WeightDtype::BF16 => "bf16",
            WeightDtype::Q8 => "q8",
            WeightDtype::Q4 => "q4",
        }
    }

    /// The form a weight named `name` of shape `[n, k]` gets when `self` is requested.
    pub fn storage_for(self, name: &str, k: usize) -> WeightDtype {
        match self {
            WeightDtype::Q4 if k % Q4_GROUP != 0 => WeightDtype::Q8,
            WeightDtype::F16 if name.ends_with(".wo.weight") => WeightDtype::F32,
            d => d,
        }
    }
}

/// A `[n, k]` linear weight (or embedding table) in one storage form, row-major along `k`.
#[derive(Debug, Clone, PartialEq)]
pub enum QWeight {
    F32 { n: usize, k: usize, data: Vec<f32> },
    F16 { n: usize, k: usize, data: Vec<u16> },
    BF16 { n: usize, k: usize, data: Vec<u16> },
    /// `w = q * scale`. `scales`: `[n]`, one per row (load-time q8, pre-quantized safetensors), or
    /// `[n, k/32]`, one per 32-weight block along the row (GGUF Q8_0 and, with codes `q - 8`, Q4_0
    /// rows whose length is not a multiple of 64); see [`q8_group`].
    Q8 { n: usize, k: usize, codes: Vec<i8>, scales: Vec<f32> },
    /// `packed`: `[n, k/2]` (layout in the module docs); `scales`, `zeros`: `[n, k/group]`. `group`
    /// is a multiple of 64 (torchao q4), or 32 (GGUF Q4_0 / Q4_1 blocks: in each 64-weight chunk the
    /// low nibbles are one group and the high nibbles the next).
    Q4 { n: usize, k: usize, group: usize, packed: Vec<u8>, scales: Vec<f32>, zeros: Vec<f32> },
}

/// `x` rounded to float16 and back (round to nearest even; beyond the float16 range: ±inf), what a
/// float16 tensor of transformers holds.
#[inline]
pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// An activation as transformers evaluates it on a float16 tensor: `gelu_new` is a chain of torch ops
/// (`0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))`), each rounding to float16; relu, gelu and
/// silu are single torch kernels (computed in f32, rounded once).
pub fn act_f16(x: f32, act: crate::config::Activation) -> f32 {
    use crate::config::Activation;
    let r = round_f16;
    match act {
        Activation::GeluNew => {
            let p3 = r(x * x * x);
            let a = r(0.044715f32 * p3);
            let b = r(x + a);
            let c = r(0.797_884_6f32 * b);
            let d = r(1.0 + r(c.tanh()));
            r(r(0.5 * x) * d)
        }
        a => r(crate::backend::cpu::apply_act(x, a)),
    }
}

/// T5LayerNorm of one float16-mode row: `weight * (x * rsqrt(mean(x^2) + eps)).to(float16)`, each
/// product rounded to float16 (the variance in f32).
pub fn rms_norm_f16_row(row: &[f32], weight: &[f32], eps: f32, out: &mut Vec<f32>) {
    let var = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    let inv = 1.0 / (var + eps).sqrt();
    out.extend(row.iter().zip(weight).map(|(v, w)| round_f16(w * round_f16(v * inv))));
}

/// Largest finite float16 (`torch.finfo(torch.float16).max`).
pub const F16_MAX: f32 = 65504.0;

/// T5Block's clamp bound when a value is inf: `finfo(float16).max - 1000` = 64504, which the float16 result
/// holds as 64512 (the nearest float16).
pub const F16_CLAMP: f32 = 64512.0;

/// transformers' T5Block float16 clamp, in place: when any value is ±inf, every value is clamped to
/// ±(65504 - 1000), stored in float16 as ±[`F16_CLAMP`]; otherwise to ±65504, which changes nothing in a
/// float16 tensor. NaN stays NaN.
pub fn clamp_f16_inf(data: &mut [f32]) {
    if data.iter().any(|v| v.is_infinite()) {
        let c = F16_CLAMP;
        for v in data.iter_mut() {
            if *v > c {
                *v = c;
            } else if *v < -c {
                *v = -c;
            }
        }
    }
}

/// torchao int4 tinygemm quantization of one row group: codes 0..=15, scale, zero.
pub fn q4_group_params(w: &[f32]) -> (f32, f32) {
    let mut min = f32::INFINITY;
    let mut max = f32::NEG_INFINITY;
    for &v in w {
        min = min.min(v);
        max = max.max(v);
    }
    let mut scale = (max - min) / 15.0f32;
    if !(scale >= Q4_EPS) {
        scale = Q4_EPS; // torch.clamp(scale, min=eps)
    }
    let zero = min + scale * 8.0f32;
    (scale, zero)
}

/// `(codes [n*k] 0..=15, scales [n*k/group], zeros [n*k/group])`.
pub fn quantize_q4(w: &[f32], n: usize, k: usize, group: usize) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
    assert!(k % group == 0 && w.len() == n * k);
    let groups = n * k / group;
    let mut codes = Vec::with_capacity(n * k);
    let (mut scales, mut zeros) = (Vec::with_capacity(groups), Vec::with_capacity(groups));
    for g in w.chunks_exact(group) {
        let (scale, zero) = q4_group_params(g);
        let min_val = zero - scale * 8.0f32;
        for &v in g {
            let q = ((v - min_val) / scale).round_ties_even().clamp(0.0, 15.0);
            codes.push(q as u8);
        }
        scales.push(scale);
        zeros.push(zero);
    }
    (codes, scales, zeros)
}

/// Pack codes (`[n, k]`, 0..=15) into the chunked nibble layout.
pub fn pack_q4(codes: &[u8], n: usize, k: usize) -> Vec<u8> {
    assert!(k % 64 == 0 && codes.len() == n * k);
    let mut out = vec![0u8; n * k / 2];
    for r in 0..n {
        for c in 0..k / 64 {
            let src = &codes[r * k + c * 64..r * k + c * 64 + 64];
            let dst = &mut out[r * k / 2 + c * 32..r * k / 2 + c * 32 + 32];
            for i in 0..32 {
                dst[i] = (src[i] & 15) | (src[32 + i] << 4);
            }
        }
    }
    out
}

/// Code of weight `j` of a packed row.
#[inline]
pub fn q4_code(row: &[u8], j: usize) -> u8 {
    let b = row[(j / 64) * 32 + j % 32];
    if j % 64 < 32 { b & 15 } else { b >> 4 }
}

/// Weights per scale of a [`QWeight::Q8`] with `scales_len` scales: `k` (one per row) or the block
/// width (32 for GGUF Q8_0).
#[inline]
pub fn q8_group(n: usize, k: usize, scales_len: usize) -> usize {
    if scales_len == n || scales_len == 0 {
        k
    } else {
        n * k / scales_len
    }
}

/// torchao int8 weight-only: `(codes [n*k], scales [n])`.
pub fn quantize_q8(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    assert!(w.len() == n * k);
    let mut codes = Vec::with_capacity(n * k);
    let mut scales = Vec::with_capacity(n);
    for row in w.chunks_exact(k.max(1)).take(n) {
        let mut amax = 0.0f32;
        for &v in row {
            amax = amax.max(v.abs());
        }
        let mut scale = amax / 127.5f32;
        if !(scale >= f32::EPSILON) {
            scale = f32::EPSILON;
        }
        let inv = 1.0f32 / scale;
        for &v in row {
            codes.push((v * inv).round_ties_even().clamp(-128.0, 127.0) as i8);
        }
        scales.push(scale);
    }
    (codes, scales)
}

impl QWeight {
    /// Convert an f32 `[n, k]` tensor to `dtype` (exactly `dtype`; see [`WeightDtype::storage_for`] for fallbacks).
    pub fn from_tensor(t: Tensor, dtype: WeightDtype) -> QWeight {
        assert_eq!(t.shape.len(), 2, "weights are 2-D");
        let (n, k) = (t.shape[0], t.shape[1]);
        match dtype {
            WeightDtype::F32 => QWeight::F32 { n, k, data: t.data },
            // a weight beyond the f16 range would become inf: it stays f32 (reported by the loader)
            WeightDtype::F16 if t.data.iter().any(|v| v.abs() > 65504.0) => QWeight::F32 { n, k, data: t.data },
            WeightDtype::F16 => QWeight::F16 { n, k, data: t.data.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect() },
            WeightDtype::BF16 => QWeight::BF16 { n, k, data: t.data.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect() },
            WeightDtype::Q8 => {
                let (codes, scales) = quantize_q8(&t.data, n, k);
                QWeight::Q8 { n, k, codes, scales }
            }
            WeightDtype::Q4 => {
                let (codes, scales, zeros) = quantize_q4(&t.data, n, k, Q4_GROUP);
                QWeight::Q4 { n, k, group: Q4_GROUP, packed: pack_q4(&codes, n, k), scales, zeros }
            }
        }
    }

    pub fn dtype(&self) -> WeightDtype {
        match self {
            QWeight::F32 { .. } => WeightDtype::F32,
            QWeight::F16 { .. } => WeightDtype::F16,
            QWeight::BF16 { .. } => WeightDtype::BF16,
            QWeight::Q8 { .. } => WeightDtype::Q8,
            QWeight::Q4 { .. } => WeightDtype::Q4,
        }
    }

    /// `(n, k)` = `(out_features, in_features)`.
    pub fn dims(&self) -> (usize, usize) {
        match *self {
            QWeight::F32 { n, k, .. } | QWeight::F16 { n, k, .. } | QWeight::BF16 { n, k, .. } | QWeight::Q8 { n, k, .. } | QWeight::Q4 { n, k, .. } => (n, k),
        }
    }

    /// Resident bytes of the weight data (codes, scales, zeros).
    pub fn bytes(&self) -> usize {
        match self {
            QWeight::F32 { data, .. } => data.len() * 4,
            QWeight::F16 { data, .. } | QWeight::BF16 { data, .. } => data.len() * 2,
            QWeight::Q8 { codes, scales, .. } => codes.len() + scales.len() * 4,
            QWeight::Q4 { packed, scales, zeros, .. } => packed.len() + (scales.len() + zeros.len()) * 4,
        }
    }

    /// Rows `r..` moved out into a weight of their own (the same storage form, scales and zeros
    /// included); `self` keeps rows `..r`, its buffers shrunk in place (as `Vec::split_off`, so a
    /// weight cut into blocks from its end never needs twice its memory).
    pub fn split_rows_off(&mut self, r: usize) -> QWeight {
        fn cut<T>(v: &mut Vec<T>, at: usize) -> Vec<T> {
            let tail = v.split_off(at);
            v.shrink_to_fit();
            tail
        }
        let (n, k) = self.dims();
        assert!(r <= n, "row {r} of a weight with {n}");
        let m = n - r;
        match self {
            QWeight::F32 { n, data, .. } => {
                *n = r;
                QWeight::F32 { n: m, k, data: cut(data, r * k) }
            }
            QWeight::F16 { n, data, .. } => {
                *n = r;
                QWeight::F16 { n: m, k, data: cut(data, r * k) }
            }
            QWeight::BF16 { n, data, .. } => {
                *n = r;
                QWeight::BF16 { n: m, k, data: cut(data, r * k) }
            }
            QWeight::Q8 { n: rows, codes, scales, .. } => {
                let per_row = scales.len() / (*rows).max(1);
                *rows = r;
                QWeight::Q8 { n: m, k, codes: cut(codes, r * k), scales: cut(scales, r * per_row) }
            }
            QWeight::Q4 { n: rows, group, packed, scales, zeros, .. } => {
                let gpr = k / *group;
                *rows = r;
                QWeight::Q4 { n: m, k, group: *group, packed: cut(packed, r * k / 2), scales: cut(scales, r * gpr), zeros: cut(zeros, r * gpr) }
            }
        }
    }

    /// Row `r` dequantized into `out` (`k` values): the embedding lookup of every storage form.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        match self {
            QWeight::F32 { k, data, .. } => out.copy_from_slice(&data[r * k..(r + 1) * k]),
            QWeight::F16 { k, data, .. } => {
                out.iter_mut().zip(&data[r * k..(r + 1) * k]).for_each(|(o, &h)| *o = half::f16::from_bits(h).to_f32())
            }
            QWeight::BF16 { k, data, .. } => {
                out.iter_mut().zip(&data[r * k..(r + 1) * k]).for_each(|(o, &h)| *o = half::bf16::from_bits(h).to_f32())
            }
            QWeight::Q8 { n, k, codes, scales } => {
                let (k, group) = (*k, q8_group(*n, *k, scales.len()));
                let per_row = k / group;
                for (b, (o, q)) in out[..k].chunks_mut(group).zip(codes[r * k..(r + 1) * k].chunks(group)).enumerate() {
                    let s = scales[r * per_row + b];
                    o.iter_mut().zip(q).for_each(|(o, &q)| *o = q as f32 * s)
                }
            }
            QWeight::Q4 { k, group, packed, scales, zeros, .. } => {
                let (k, group) = (*k, *group);
                let row = &packed[r * k / 2..(r + 1) * k / 2];
                let gpr = k / group;
                // per 64-weight chunk (groups are multiples of 64): byte i → weights i and 32 + i;
                // torchao `_dequantize_affine_tinygemm`: (q - mid) * scale + zero
                // (group 32: the low nibbles of a chunk are group 2c, the high nibbles group 2c + 1)
                for (c, (bytes, o)) in row.chunks_exact(32).zip(out[..k].chunks_exact_mut(64)).enumerate() {
                    let g = r * gpr + c * 64 / group;
                    let g_hi = if group == 32 { g + 1 } else { g };
                    let (s, z) = (scales[g], zeros[g]);
                    let (s_hi, z_hi) = (scales[g_hi], zeros[g_hi]);
                    let (lo, hi) = o.split_at_mut(32);
                    for i in 0..32 {
                        lo[i] = ((bytes[i] & 15) as f32 - 8.0) * s + z;
                        hi[i] = ((bytes[i] >> 4) as f32 - 8.0) * s_hi + z_hi;
                    }
                }
            }
        }
    }

    /// The whole weight as f32 (tests, backends without a native form).
    pub fn to_tensor(&self) -> Tensor {
        let (n, k) = self.dims();
        if let QWeight::F32 { data, .. } = self {
            return Tensor::new(vec![n, k], data.clone());
        }
        let mut data = vec![0.0f32; n * k];
        for r in 0..n {
            self.dequantize_row(r, &mut data[r * k..(r + 1) * k]);
        }
        Tensor::new(vec![n, k], data)
    }
}

/// The JSON note stored under this key in the safetensors header metadata of a quantized file.
pub const METADATA_KEY: &str = "t5_web_quantization";
/// Suffixes of the tensors that replace `<name>` for a packed weight.
pub const QWEIGHT_SUFFIX: &str = ".qweight";
pub const SCALES_SUFFIX: &str = ".scales";
pub const ZEROS_SUFFIX: &str = ".zeros";

/// The scheme note written into the header metadata of a quantized checkpoint.
pub fn scheme_note(dtype: WeightDtype, fallbacks: &[(String, WeightDtype)]) -> String {
    serde_json::json!({
        "format": "t5-web quantized safetensors v1",
        "dtype": dtype.name(),
        "q4": {
            "scheme": "torchao int4 weight-only (tinygemm affine, ZeroPointDomain.FLOAT, preserve_zero=False)",
            "group_size": Q4_GROUP, "quant_min": 0, "quant_max": 15, "eps": Q4_EPS, "rounding": "nearest, ties to even",
            "dequantize": "(q - 8) * scale + zero",
            "tensors": "<name>.qweight U8 [n, k/2], <name>.scales F32 [n, k/128], <name>.zeros F32 [n, k/128]",
            "packing": "per row, per 64-weight chunk c: byte c*32+i = q[c*64+i] | q[c*64+32+i] << 4"
        },
        "q8": {
            "scheme": "torchao int8 weight-only: symmetric, per output channel", "quant_min": -128, "quant_max": 127,
            "scale": "max(amax / 127.5, f32 eps)", "dequantize": "q * scale",
            "tensors": "<name>.qweight I8 [n, k], <name>.scales F32 [n]"
        },
        "fallbacks": fallbacks.iter().map(|(n, d)| serde_json::json!({"tensor": n, "stored_as": d.name()})).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Quantize a checkpoint: every 2-D `*.weight` tensor except the relative attention bias (the
/// linear weights, `shared`, `lm_head`) stored as `dtype` (with the same fallbacks as load-time
/// quantization), everything else as f32. Returns the safetensors bytes (the scheme note in the
/// header metadata under [`METADATA_KEY`]) and the fallbacks.
pub fn quantize_checkpoint(store: &crate::weights::WeightStore, dtype: WeightDtype) -> Result<(Vec<u8>, Vec<(String, WeightDtype)>)> {
    use safetensors::tensor::{Dtype, TensorView};
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut fallbacks = Vec::new();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for name in store.names() {
        let shape = store.shape(name).unwrap_or(&[]).to_vec();
        let t = store.get(name, &shape)?;
        let linear = shape.len() == 2 && name.ends_with(".weight") && !name.contains("relative_attention_bias");
        if !linear {
            out.push((name.clone(), Dtype::F32, shape, f32_bytes(&t.data)));
            continue;
        }
        let q = QWeight::from_tensor(t, dtype.storage_for(name, shape[1]));
        if q.dtype() != dtype {
            fallbacks.push((name.clone(), q.dtype()));
        }
        match q {
            QWeight::F32 { data, .. } => out.push((name.clone(), Dtype::F32, shape, f32_bytes(&data))),
            QWeight::F16 { data, .. } => out.push((name.clone(), Dtype::F16, shape, data.iter().flat_map(|h| h.to_le_bytes()).collect())),
            QWeight::BF16 { data, .. } => out.push((name.clone(), Dtype::BF16, shape, data.iter().flat_map(|h| h.to_le_bytes()).collect())),
            QWeight::Q8 { n, k, codes, scales } => {
                out.push((format!("{name}{QWEIGHT_SUFFIX}"), Dtype::I8, vec![n, k], codes.iter().map(|&c| c as u8).collect()));
                out.push((format!("{name}{SCALES_SUFFIX}"), Dtype::F32, vec![n], f32_bytes(&scales)));
            }
            QWeight::Q4 { n, k, group, packed, scales, zeros } => {
                out.push((format!("{name}{QWEIGHT_SUFFIX}"), Dtype::U8, vec![n, k / 2], packed));
                out.push((format!("{name}{SCALES_SUFFIX}"), Dtype::F32, vec![n, k / group], f32_bytes(&scales)));
                out.push((format!("{name}{ZEROS_SUFFIX}"), Dtype::F32, vec![n, k / group], f32_bytes(&zeros)));
            }
        }
    }
    let views: Vec<(String, TensorView<'_>)> = out
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| T5Error::BadWeights { file: None, msg: e.to_string() })?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(METADATA_KEY.to_string(), scheme_note(dtype, &fallbacks));
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| T5Error::BadWeights { file: None, msg: e.to_string() })?;
    Ok((bytes, fallbacks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_roundtrip_error_within_half_step() {
        let (n, k) = (3, 256);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * (1 + i / 300) as f32).collect();
        let q = QWeight::from_tensor(Tensor::new(vec![n, k], w.clone()), WeightDtype::Q4);
        let d = q.to_tensor();
        if let QWeight::Q4 { scales, .. } = &q {
            for (i, (a, b)) in w.iter().zip(&d.data).enumerate() {
                let s = scales[i / Q4_GROUP];
                assert!((a - b).abs() <= s * 0.5 + 1e-6, "{i}: {a} vs {b} (scale {s})");
            }
        } else {
            panic!()
        }
    }

    #[test]
    fn q8_roundtrip_and_storage_fallbacks() {
        let w: Vec<f32> = (0..2 * 40).map(|i| (i as f32 - 40.0) / 7.0).collect();
        let q = QWeight::from_tensor(Tensor::new(vec![2, 40], w.clone()), WeightDtype::Q8);
        let d = q.to_tensor();
        for (a, b) in w.iter().zip(&d.data) {
            assert!((a - b).abs() <= 40.0 / 7.0 / 127.5 * 0.5 + 1e-6);
        }
        assert_eq!(WeightDtype::Q4.storage_for("x.q.weight", 32), WeightDtype::Q8);
        assert_eq!(WeightDtype::Q4.storage_for("x.q.weight", 512), WeightDtype::Q4);
        assert_eq!(WeightDtype::F16.storage_for("a.DenseReluDense.wo.weight", 512), WeightDtype::F32);
        assert_eq!(WeightDtype::parse("Q4").unwrap(), WeightDtype::Q4);
        assert!(WeightDtype::parse("q3").is_err());
    }
}
