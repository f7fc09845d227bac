//! GGUF's tensor types (ggml's `ggml_type`) and their lossless conversion into the engine's weight
//! forms: the 32-wide blocks of Q8_0 (f16 `d`, 32 × i8: `q·d`), Q4_0 (f16 `d`, 16 bytes of nibbles,
//! byte `i` = weight `i` low | weight `16 + i` high: `(q - 8)·d`) and Q4_1 (f16 `d`, f16 `m`,
//! nibbles: `q·d + m`) become q8 with one f32 scale per block, or q4 with groups of 32 (codes
//! repacked into the 64-weight chunk layout of [`super::quant`], scale `d`, zero point 0 or `m + 8d`,
//! which is exact in f32 for f16 `d`, `m` of ordinary range and checked per block). Every
//! dequantized weight equals ggml's / gguf-py's `q·d (+ m)` bit for bit. Rows that are not a
//! multiple of 64 long fall back to q8 blocks (Q4_0: codes `q - 8`) or, for Q4_1, f32.

use super::QWeight;

/// The tensor types the engine reads (ggml's `ggml_type` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
}

/// ggml type names by id (for messages about the types the engine does not read).
pub fn ggml_type_name(id: u32) -> &'static str {
    match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    }
}

impl GgmlType {
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            30 => GgmlType::BF16,
            8 => GgmlType::Q8_0,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
        }
    }

    /// (weights per block, bytes per block)
    pub fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
        }
    }

    pub fn is_quantized(self) -> bool {
        matches!(self, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1)
    }
}

#[inline]
fn f16(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Code `j` (0..32) of a Q4_0 / Q4_1 block's 16 nibble bytes.
#[inline]
fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 15
    } else {
        qs[j - 16] >> 4
    }
}

/// ggml's dequantization of one block (`q·d`, `(q - 8)·d`, `q·d + m` in f32), the reference the
/// conversions are tested against.
pub fn dequantize_block(ty: GgmlType, block: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => out[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]),
        GgmlType::F16 => out[0] = f16(block),
        GgmlType::BF16 => out[0] = half::bf16::from_le_bytes([block[0], block[1]]).to_f32(),
        GgmlType::Q8_0 => {
            let d = f16(block);
            for j in 0..32 {
                out[j] = block[2 + j] as i8 as f32 * d;
            }
        }
        GgmlType::Q4_0 => {
            let d = f16(block);
            for j in 0..32 {
                out[j] = (nibble(&block[2..], j) as i8 - 8) as f32 * d;
            }
        }
        GgmlType::Q4_1 => {
            let (d, m) = (f16(block), f16(&block[2..]));
            for j in 0..32 {
                out[j] = d * nibble(&block[4..], j) as f32 + m;
            }
        }
    }
}

/// A `[n, k]` quantized GGUF tensor (`bytes`: its blocks) in the engine's fused-kernel form, without
/// loss (module docs).
pub fn to_qweight(ty: GgmlType, n: usize, k: usize, bytes: &[u8]) -> QWeight {
    let (bw, bb) = ty.block();
    debug_assert!(k % bw == 0 && bytes.len() == n * k / bw * bb);
    let blocks = bytes.chunks_exact(bb);
    match ty {
        GgmlType::F32 => QWeight::F32 { n, k, data: bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect() },
        GgmlType::F16 => QWeight::F16 { n, k, data: bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect() },
        GgmlType::BF16 => QWeight::BF16 { n, k, data: bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect() },
        GgmlType::Q8_0 => {
            let mut codes = Vec::with_capacity(n * k);
            let mut scales = Vec::with_capacity(n * k / 32);
            for b in blocks {
                scales.push(f16(b));
                codes.extend(b[2..34].iter().map(|&q| q as i8));
            }
            QWeight::Q8 { n, k, codes, scales }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let q41 = ty == GgmlType::Q4_1;
            let off = if q41 { 4 } else { 2 };
            let mut scales = Vec::with_capacity(n * k / 32);
            let mut zeros = Vec::with_capacity(n * k / 32);
            let mut exact = true;
            for b in bytes.chunks_exact(bb) {
                let d = f16(b);
                scales.push(d);
                if q41 {
                    let m = f16(&b[2..]);
                    let z = m + 8.0 * d;
                    // `(q - 8)·d + z` equals `q·d + m` bit for bit when `z` is exact (both are
                    // the one rounding of the same real number: the products are exact)
                    exact &= m as f64 + 8.0 * d as f64 == z as f64;
                    zeros.push(z);
                } else {
                    // -0: `(q - 8)·d + z` keeps the sign of a zero product, as ggml's `(q - 8)·d`
                    zeros.push(-0.0);
                }
            }
            if k % 64 == 0 && exact {
                let mut packed = vec![0u8; n * k / 2];
                for (c, dst) in packed.chunks_exact_mut(32).enumerate() {
                    // chunk c of the matrix = blocks 2c (low nibbles) and 2c + 1 (high nibbles)
                    let lo = &bytes[2 * c * bb + off..2 * c * bb + bb];
                    let hi = &bytes[(2 * c + 1) * bb + off..(2 * c + 1) * bb + bb];
                    for (i, o) in dst.iter_mut().enumerate() {
                        *o = nibble(lo, i) | (nibble(hi, i) << 4);
                    }
                }
                QWeight::Q4 { n, k, group: 32, packed, scales, zeros }
            } else if !q41 {
                // rows not a multiple of 64: Q4_0 is q8 with one scale per block, codes q - 8
                let mut codes = Vec::with_capacity(n * k);
                for b in blocks {
                    codes.extend((0..32).map(|j| nibble(&b[2..], j) as i8 - 8));
                }
                QWeight::Q8 { n, k, codes, scales }
            } else {
                let mut data = vec![0.0f32; n * k];
                for (b, o) in blocks.zip(data.chunks_exact_mut(32)) {
                    dequantize_block(ty, b, o);
                }
                QWeight::F32 { n, k, data }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: f32) -> [u8; 2] {
        half::f16::from_f32(v).to_le_bytes()
    }

    /// `n` rows of `k / 32` blocks of type `ty`, scales and codes varied.
    fn blocks(ty: GgmlType, n: usize, k: usize, d: f32, m: f32) -> Vec<u8> {
        let mut out = Vec::new();
        for b in 0..n * k / 32 {
            let d = d * (1.0 + b as f32 * 0.25) * if b % 3 == 1 { -1.0 } else { 1.0 };
            match ty {
                GgmlType::Q8_0 => {
                    out.extend(h(d));
                    out.extend((0..32).map(|j| ((b * 37 + j * 11) % 256) as u8));
                }
                GgmlType::Q4_0 => {
                    out.extend(h(d));
                    out.extend((0..16).map(|j| ((b * 53 + j * 29) % 256) as u8));
                }
                GgmlType::Q4_1 => {
                    out.extend(h(d.abs()));
                    out.extend(h(m * (b as f32 - 1.5)));
                    out.extend((0..16).map(|j| ((b * 53 + j * 29) % 256) as u8));
                }
                _ => unreachable!(),
            }
        }
        out
    }

    fn reference(ty: GgmlType, n: usize, k: usize, bytes: &[u8]) -> Vec<f32> {
        let bb = ty.block().1;
        let mut out = vec![0.0f32; n * k];
        for (b, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(32)) {
            dequantize_block(ty, b, o);
        }
        out
    }

    #[test]
    fn every_row_length_converts_without_loss() {
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
            for k in [32, 64, 96, 128] {
                let (n, d, m) = (3, 0.0123, 0.05);
                let bytes = blocks(ty, n, k, d, m);
                let q = to_qweight(ty, n, k, &bytes);
                let form = match (&q, ty) {
                    (QWeight::Q8 { scales, .. }, _) if scales.len() == n * k / 32 => "q8 blocks",
                    (QWeight::Q4 { group: 32, .. }, GgmlType::Q4_0 | GgmlType::Q4_1) if k % 64 == 0 => "q4 g32",
                    (QWeight::F32 { .. }, GgmlType::Q4_1) if k % 64 != 0 => "f32",
                    (other, _) => panic!("{ty:?} k={k}: {:?}", other.dtype()),
                };
                let want = reference(ty, n, k, &bytes);
                let got = q.to_tensor().data;
                for i in 0..n * k {
                    assert_eq!(got[i].to_bits(), want[i].to_bits(), "{ty:?} k={k} ({form}) [{i}]: {} vs {}", got[i], want[i]);
                }
            }
        }
    }

    #[test]
    fn q4_1_with_an_inexact_zero_point_stays_exact_in_f32() {
        // m tiny next to 8d: m + 8d is not representable in f32, so the tensor is kept dequantized
        let (n, k) = (1, 64);
        let bytes = blocks(GgmlType::Q4_1, n, k, 1000.0, 6.0e-8);
        let q = to_qweight(GgmlType::Q4_1, n, k, &bytes);
        assert!(matches!(q, QWeight::F32 { .. }), "{:?}", q.dtype());
        assert_eq!(q.to_tensor().data, reference(GgmlType::Q4_1, n, k, &bytes));
    }

}
