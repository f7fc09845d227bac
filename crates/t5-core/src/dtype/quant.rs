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
    let (min, max) = min_max(w);
    let mut scale = (max - min) / 15.0f32;
    if !(scale >= Q4_EPS) {
        scale = Q4_EPS; // torch.clamp(scale, min=eps)
    }
    let zero = min + scale * 8.0f32;
    (scale, zero)
}

/// The relaxed-SIMD build: there the compiler may turn the compare-and-select reductions below into
/// `f32x4.relaxed_min` / `relaxed_max`, whose answer for NaN is the engine's (on x86 a NaN lane
/// restarted the running value: another scale for a group holding a NaN than every other build's),
/// so NaN is replaced first by a value that changes neither; for numbers they agree (but for the
/// sign of a zero). The other builds skip that step (5% of a t5-small q4 load in wasm).
const RELAXED: bool = cfg!(target_feature = "relaxed-simd");

/// Lanes of the reductions below: independent running values, so the loops vectorize.
const LANES: usize = 16;

/// `(min, max)` of `w`, NaNs ignored (as `f32::min` / `f32::max` folds; ±∞ when `w` has no number). Taken per
/// lane, then across lanes: the same set of values, so the same answer as one running value, except perhaps the
/// sign of a zero result, which [`q4_group_params`] does not see (`max - min` and `min + 8 · scale`, scale > 0).
/// Written as compare-and-select, not `f32::min`: that is a libm call (`fminf`) in wasm, where `f32.min` treats
/// NaN differently, and it took half of a wasm q4 load.
fn min_max(w: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
    let mut chunks = w.chunks_exact(LANES);
    // in the relaxed-SIMD build NaN is first replaced by a value that changes neither ([`RELAXED`])
    for c in &mut chunks {
        for i in 0..LANES {
            let (a, b) = if RELAXED && c[i].is_nan() { (f32::INFINITY, f32::NEG_INFINITY) } else { (c[i], c[i]) };
            lo[i] = if a < lo[i] { a } else { lo[i] };
            hi[i] = if b > hi[i] { b } else { hi[i] };
        }
    }
    for (i, &v) in chunks.remainder().iter().enumerate() {
        let (a, b) = if RELAXED && v.is_nan() { (f32::INFINITY, f32::NEG_INFINITY) } else { (v, v) };
        lo[i] = if a < lo[i] { a } else { lo[i] };
        hi[i] = if b > hi[i] { b } else { hi[i] };
    }
    (lo.iter().fold(f32::INFINITY, |a, &b| if b < a { b } else { a }), hi.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a }))
}

/// Largest `|v|` of `w` (0 for none; NaNs ignored), per lane then across lanes, compare-and-select as [`min_max`].
fn abs_max(w: &[f32]) -> f32 {
    let mut m = [0.0f32; LANES];
    let mut chunks = w.chunks_exact(LANES);
    // NaN as 0 in the relaxed-SIMD build ([`RELAXED`])
    for c in &mut chunks {
        for i in 0..LANES {
            let a = if RELAXED && c[i].is_nan() { 0.0 } else { c[i].abs() };
            m[i] = if a > m[i] { a } else { m[i] };
        }
    }
    for (i, &v) in chunks.remainder().iter().enumerate() {
        let a = if RELAXED && v.is_nan() { 0.0 } else { v.abs() };
        m[i] = if a > m[i] { a } else { m[i] };
    }
    m.iter().fold(0.0f32, |a, &b| if b > a { b } else { a })
}

/// The code `x.round_ties_even().clamp(lo, hi) as i8 / as u8` gives (NaN → 0), as the low byte of the
/// result, for integer bounds within ±2^22, without a branch or a saturating conversion, so that the
/// quantization loops vectorize: clamping first rounds alike (the bounds are integers), and adding
/// 1.5 · 2^23 to a number of that range leaves it, rounded to an integer in ties-to-even, in the low bits of
/// the mantissa, two's complement. (`round_ties_even` is a libm call on the x86-64 baseline: quantizing the
/// t5-v1_1-xl shape to q8 spent 28% of its load in `rintf`.)
#[inline(always)]
pub fn code_bits(x: f32, lo: f32, hi: f32) -> u32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    // NaN tested before the clamp: with relaxed SIMD the vectorized clamp may become
    // `f32x4.relaxed_min` / `relaxed_max`, whose answer for NaN is the engine's (x86: the bound)
    if x.is_nan() {
        0
    } else {
        (x.clamp(lo, hi) + MAGIC).to_bits()
    }
}

/// `(packed [n*k/2], scales [n*k/group], zeros [n*k/group])`: codes 0..=15 in the chunked nibble
/// layout of [`QWeight::Q4`] (each 64 weights of a row in 32 bytes, weight `i` in the low nibble of
/// byte `i`, weight `32 + i` in its high nibble).
pub fn quantize_q4(w: &[f32], n: usize, k: usize, group: usize) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
    assert!(w.len() == n * k);
    let mut packed = vec![0u8; n * k / 2];
    let (mut scales, mut zeros) = (vec![0.0; n * k / group], vec![0.0; n * k / group]);
    quantize_q4_into(w, k, group, &mut packed, &mut scales, &mut zeros);
    (packed, scales, zeros)
}

/// [`quantize_q4`] of whole rows of `k` into buffers the caller made (`packed` of `w.len() / 2`,
/// `scales` and `zeros` of `w.len() / group`): a streamed load's threads write their rows in place.
pub fn quantize_q4_into(w: &[f32], k: usize, group: usize, packed: &mut [u8], scales: &mut [f32], zeros: &mut [f32]) {
    assert!(group % 64 == 0 && k % group == 0 && w.len() % group == 0);
    assert!(packed.len() == w.len() / 2 && scales.len() == w.len() / group && zeros.len() == scales.len());
    let groups = w.chunks_exact(group).zip(packed.chunks_exact_mut(group / 2));
    for ((g, out), (s, z)) in groups.zip(scales.iter_mut().zip(zeros.iter_mut())) {
        let (scale, zero) = q4_group_params(g);
        let min_val = zero - scale * 8.0f32;
        let code = |v: f32| code_bits((v - min_val) / scale, 0.0, 15.0) as u8;
        // groups are whole 64-weight chunks of a row, so a group's bytes are its chunks' bytes
        for (src, dst) in g.chunks_exact(64).zip(out.chunks_exact_mut(32)) {
            for i in 0..32 {
                dst[i] = code(src[i]) | (code(src[32 + i]) << 4);
            }
        }
        (*s, *z) = (scale, zero);
    }
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

/// torchao int8 weight-only: `(codes [n*k], scales [n])` (no scales when `k` is 0).
pub fn quantize_q8(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    assert!(w.len() == n * k);
    if k == 0 {
        return (Vec::new(), Vec::new());
    }
    let (mut codes, mut scales) = (vec![0i8; n * k], vec![0.0; n]);
    quantize_q8_into(w, k, &mut codes, &mut scales);
    (codes, scales)
}

/// [`quantize_q8`] of whole rows of `k` (> 0) into buffers the caller made (`codes` of `w.len()`,
/// `scales` of `w.len() / k`).
pub fn quantize_q8_into(w: &[f32], k: usize, codes: &mut [i8], scales: &mut [f32]) {
    assert!(k > 0 && w.len() % k == 0 && codes.len() == w.len() && scales.len() == w.len() / k);
    for ((row, out), s) in w.chunks_exact(k).zip(codes.chunks_exact_mut(k)).zip(scales.iter_mut()) {
        let mut scale = abs_max(row) / 127.5f32;
        if !(scale >= f32::EPSILON) {
            scale = f32::EPSILON;
        }
        let inv = 1.0f32 / scale;
        for (c, &v) in out.iter_mut().zip(row) {
            *c = code_bits(v * inv, -128.0, 127.0) as u8 as i8;
        }
        *s = scale;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::QWeight;
    use crate::tensor::Tensor;

    #[test]
    fn code_bits_is_round_ties_even_clamped_bit_for_bit() {
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
        for &x in &xs {
            assert_eq!(code_bits(x, -128.0, 127.0) as u8 as i8, x.round_ties_even().clamp(-128.0, 127.0) as i8, "{x:e}: q8 code");
            assert_eq!(code_bits(x, 0.0, 15.0) as u8, x.round_ties_even().clamp(0.0, 15.0) as u8, "{x:e}: q4 code");
        }
    }

    /// The vectorizable loops against the one-value-at-a-time reference they replaced, on rows with NaN, ±∞,
    /// signed zeros, ties and lengths that are not a multiple of the lanes.
    #[test]
    fn quantize_loops_match_the_scalar_reference() {
        let reference_q8 = |row: &[f32]| {
            let mut amax = 0.0f32;
            for &v in row {
                amax = amax.max(v.abs());
            }
            let scale = if amax / 127.5 >= f32::EPSILON { amax / 127.5 } else { f32::EPSILON };
            (row.iter().map(|&v| std::hint::black_box((v * (1.0 / scale)).round_ties_even()).clamp(-128.0, 127.0) as i8).collect::<Vec<_>>(), scale)
        };
        let reference_q4 = |g: &[f32]| {
            let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
            for &v in g {
                min = min.min(v);
                max = max.max(v);
            }
            let scale = if (max - min) / 15.0 >= Q4_EPS { (max - min) / 15.0 } else { Q4_EPS };
            let zero = min + scale * 8.0;
            let min_val = zero - scale * 8.0;
            // one value at a time (`black_box`: not vectorized, so no relaxed min / max either)
            (g.iter().map(|&v| std::hint::black_box(((v - min_val) / scale).round_ties_even()).clamp(0.0, 15.0) as u8).collect::<Vec<_>>(), scale, zero)
        };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..400 {
            let k = [128, 256, 384][case % 3];
            let mut row: Vec<f32> = (0..k).map(|_| ((next() >> 40) as f32 / 65536.0 - 128.0) * [1.0, 1e-3, 1e6][case % 3]).collect();
            let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 0.5, -2.5];
            for _ in 0..case % 5 {
                let i = next() as usize % k;
                row[i] = specials[next() as usize % specials.len()];
            }
            if case % 17 == 0 {
                row.iter_mut().for_each(|v| *v = if next() % 2 == 0 { 0.0 } else { -0.0 });
            }
            let (codes, scales) = quantize_q8(&row, 1, k);
            let (want, scale) = reference_q8(&row);
            assert_eq!((codes, scales[0].to_bits()), (want, scale.to_bits()), "q8 case {case}");
            let (packed, scales, zeros) = quantize_q4(&row, 1, k, Q4_GROUP);
            let codes: Vec<u8> = (0..k).map(|j| q4_code(&packed, j)).collect();
            for (g, chunk) in row.chunks(Q4_GROUP).enumerate() {
                let (want, scale, zero) = reference_q4(chunk);
                assert_eq!(&codes[g * Q4_GROUP..(g + 1) * Q4_GROUP], &want[..], "q4 case {case} group {g}");
                assert_eq!((scales[g].to_bits(), zeros[g].to_bits()), (scale.to_bits(), zero.to_bits()), "q4 case {case} group {g}");
            }
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
