//! Weight forms and quantization: the storage form a linear weight is requested in ([`WeightDtype`]),
//! a weight in its form ([`QWeight`]), the q8 / q4 schemes ([`quant`]), GGUF's quantized blocks
//! ([`ggml`]), and the float16 activation maths of transformers' float16 forward ([`float16`]).
//! Nothing here knows a file format, a backend or the model.
//!
//! * `q4`: torchao's int4 weight-only scheme (`Int4WeightOnlyConfig`, the tinygemm affine form):
//!   groups of [`quant::Q4_GROUP`] = 128 along the input dimension, asymmetric, round to nearest (ties to
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
//!   holds them in float16, T5Block's inf clamp, [`float16::round_f16`] / [`float16::clamp_f16_inf`]).
//!
//! Layers whose input dimension is not a multiple of 128 fall back from `q4` to `q8` (reported by
//! the loader). Packed q4 layout (memory and file): row-major `[n, k / 2]` bytes; within each
//! 64-weight chunk `c` of a row, byte `c * 32 + i` holds weight `c * 64 + i` in its low nibble and
//! weight `c * 64 + 32 + i` in its high nibble (so SIMD kernels unpack 32 consecutive weights with
//! one mask and one shift).

pub mod ggml;
pub mod float16;
pub mod quant;

use crate::error::{Result, T5Error};
use crate::tensor::Tensor;
use quant::{q8_group, quantize_q4, quantize_q8, Q4_GROUP};

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
                let (packed, scales, zeros) = quantize_q4(&t.data, n, k, Q4_GROUP);
                QWeight::Q4 { n, k, group: Q4_GROUP, packed, scales, zeros }
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
