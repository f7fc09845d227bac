//! The q8 / q4 quantization schemes (torchao's int8 and int4 weight-only, see [`crate::dtype`]) and
//! the names and note of a pre-quantized safetensors checkpoint.

use super::WeightDtype;
#[cfg(doc)]
use super::QWeight;

/// q4 group size along the input dimension (torchao's default).
pub const Q4_GROUP: usize = 128;
/// torchao `Int4WeightOnlyConfig` (tinygemm / Int4CPULayout) minimum scale.
pub const Q4_EPS: f32 = 1e-6;

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

/// `x.round_ties_even()`, bit for bit, without the libm call it is on baseline x86-64 (no SSE4.1
/// `roundss`): for |x| < 2^22, adding and subtracting 1.5 · 2^23 leaves x rounded to an integer
/// under the default round-to-nearest-even mode. Quantizing the t5-v1_1-xl shape to q8 spent 28%
/// of its load in `rintf` (perf, natively).
#[inline]
pub fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    if x.abs() < 4_194_304.0 {
        (x + MAGIC) - MAGIC
    } else {
        x.round_ties_even()
    }
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
            let q = round_even((v - min_val) / scale).clamp(0.0, 15.0);
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
            codes.push(round_even(v * inv).clamp(-128.0, 127.0) as i8);
        }
        scales.push(scale);
    }
    (codes, scales)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::QWeight;
    use crate::tensor::Tensor;

    #[test]
    fn round_even_is_round_ties_even_bit_for_bit() {
        let mut xs: Vec<f32> = vec![0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 127.5, -128.5, 4_194_303.5, 4_194_304.0, -4_194_305.0, 1e9, -1e30];
        xs.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, -f32::MIN_POSITIVE, 0.49999997, -0.49999997]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            xs.push(f32::from_bits(seed as u32)); // every exponent, sign and payload
            xs.push((seed >> 40) as f32 / 256.0 - 32768.0); // halves and quarters near the codes
        }
        for x in xs {
            let (a, b) = (round_even(x), x.round_ties_even());
            assert!(a.to_bits() == b.to_bits() || (a == b && a == 0.0) || (a.is_nan() && b.is_nan()), "{x:e}: {a:e} vs {b:e}");
        }
    }

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
