//! Portable one-row kernels: the reference every SIMD kernel is checked against.

use crate::dtype::quant::q4_code;
use crate::dtype::QWeight;

pub fn matvec(x: &[f32], w: &QWeight, out: &mut [f32]) {
    let (n, k) = w.dims();
    match w {
        QWeight::F32 { data, .. } => {
            for j in 0..n {
                out[j] = dot(&x[..k], &data[j * k..(j + 1) * k], |v| v);
            }
        }
        QWeight::F16 { data, .. } => {
            for j in 0..n {
                out[j] = dot(&x[..k], &data[j * k..(j + 1) * k], |h| half::f16::from_bits(h).to_f32());
            }
        }
        QWeight::BF16 { data, .. } => {
            for j in 0..n {
                out[j] = dot(&x[..k], &data[j * k..(j + 1) * k], |h| f32::from_bits((h as u32) << 16));
            }
        }
        QWeight::Q8 { codes, scales, .. } if scales.len() == n => {
            for j in 0..n {
                out[j] = dot(&x[..k], &codes[j * k..(j + 1) * k], |q| q as f32) * scales[j];
            }
        }
        QWeight::Q8 { codes, scales, .. } => {
            let group = crate::dtype::quant::q8_group(n, k, scales.len());
            let bpr = k / group;
            for j in 0..n {
                let mut total = 0.0f32;
                for b in 0..bpr {
                    let t = j * k + b * group;
                    total += dot(&x[b * group..(b + 1) * group], &codes[t..t + group], |q| q as f32) * scales[j * bpr + b];
                }
                out[j] = total;
            }
        }
        QWeight::Q4 { group, packed, scales, zeros, .. } => {
            let group = *group;
            let gpr = k / group;
            let xs = super::group_sums(&x[..k], group);
            for j in 0..n {
                let row = &packed[j * k / 2..(j + 1) * k / 2];
                let mut total = 0.0f32;
                for g in 0..gpr {
                    let mut acc = [0.0f32; 8];
                    for t in (g * group..(g + 1) * group).step_by(8) {
                        for l in 0..8 {
                            acc[l] += (q4_code(row, t + l) as f32 - 8.0) * x[t + l];
                        }
                    }
                    let s: f32 = acc.iter().sum();
                    total += scales[j * gpr + g] * s + zeros[j * gpr + g] * xs[g];
                }
                out[j] = total;
            }
        }
    }
}

fn dot<T: Copy>(x: &[f32], w: &[T], f: impl Fn(T) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += x[c * 8 + l] * f(w[c * 8 + l]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for t in chunks * 8..x.len() {
        s += x[t] * f(w[t]);
    }
    s
}
