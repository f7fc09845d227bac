use super::*;
use crate::dtype::{QWeight, WeightDtype};
use crate::tensor::Tensor;

fn naive(m: usize, x: &[f32], w: &Tensor) -> Vec<f64> {
    let (n, k) = (w.shape[0], w.shape[1]);
    let mut o = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            o[i * n + j] = (0..k).map(|t| x[i * k + t] as f64 * w.data[j * k + t] as f64).sum();
        }
    }
    o
}

/// Every one-row kernel that applies to `q` (the dispatch's preconditions), run directly: the
/// scalar one, `matvec` (whatever it picks), and on x86 AVX2 and each AVX-512 kernel, so a kernel
/// the dispatch does not pick on this machine is checked too.
fn every_kernel(x: &[f32], q: &QWeight) -> Vec<(&'static str, Vec<f32>)> {
    let n = q.dims().0;
    let run = |f: &dyn Fn(&mut [f32])| {
        let mut o = vec![0.0; n];
        f(&mut o);
        o
    };
    let mut outs = vec![("scalar", run(&|o| scalar::matvec(x, q, o))), ("matvec", run(&|o| matvec(x, q, o)))];
    #[cfg(target_arch = "x86_64")]
    {
        let k = q.dims().1;
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
            outs.push(("avx2", run(&|o| unsafe { avx2::matvec(x, q, o) })));
        }
        if std::is_x86_feature_detected!("avx512f") {
            match q {
                QWeight::Q4 { group, .. } if group % 64 == 0 => {
                    outs.push(("avx512 q4", run(&|o| unsafe { avx512::q4(x, q, o) })));
                    if group % 128 == 0 {
                        outs.push(("avx512 q4 lut", run(&|o| unsafe { avx512::q4_lut(x, q, o) })));
                    }
                }
                // (its precondition: k % 16 == 0 per row, k % 32 == 0 with blocks)
                QWeight::Q8 { n, scales, .. } if k % 32 == 0 || scales.len() == *n && k % 16 == 0 => {
                    outs.push(("avx512 q8", run(&|o| unsafe { avx512::q8(x, q, o) })));
                }
                QWeight::BF16 { .. } if k % 16 == 0 => outs.push(("avx512 bf16", run(&|o| unsafe { avx512::bf16(x, q, o) }))),
                _ => {}
            }
        }
    }
    outs
}

/// Each output within 1e-4 of the f64 reference.
fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - r).abs() < 1e-4, "{what} [{i}]: {g} vs {r}");
    }
}

#[test]
fn every_form_matches_its_dequantized_weights() {
    let (n, k) = (37, 256);
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect();
    let x: Vec<f32> = (0..3 * k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
    for dt in [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4] {
        let q = QWeight::from_tensor(Tensor::new(vec![n, k], w.clone()), dt);
        let deq = q.to_tensor();
        for m in [1, 3] {
            let want = naive(m, &x, &deq);
            let mut got = vec![0.0; m * n];
            linear(m, &x, &q, &mut got);
            assert_close(&got, &want, &format!("{dt:?} m={m}"));
        }
        for (name, o) in every_kernel(&x[..k], &q) {
            assert_close(&o, &naive(1, &x, &deq), &format!("{dt:?} {name}"));
        }
    }
}

/// q4 with groups of 256 (two 128-weight steps per group in the AVX-512 kernels), every
/// x86 kernel directly and the scalar one.
#[test]
fn q4_wide_groups_match_their_dequantized_weights() {
    let (n, k, group) = (13, 512, 256);
    let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
    let scales: Vec<f32> = (0..n * k / group).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
    let zeros: Vec<f32> = (0..n * k / group).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
    let packed: Vec<u8> = (0..n * k / 2).map(|i| (i * 131 % 256) as u8).collect();
    let q = QWeight::Q4 { n, k, group, packed, scales, zeros };
    let want = naive(1, &x, &q.to_tensor());
    let outs = every_kernel(&x, &q);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        assert!(outs.iter().any(|(name, _)| *name == "avx512 q4 lut"));
    }
    for (name, o) in outs {
        assert_close(&o, &want, name);
    }
}

/// The GGUF forms: q8 with one scale per 32-weight block, q4 with groups of 32 (low / high
/// nibbles of a 64-weight chunk in two groups), through the SIMD, scalar and strip paths.
#[test]
fn block_scaled_forms_match_their_dequantized_weights() {
    let (n, k) = (19, 192);
    let x: Vec<f32> = (0..3 * k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
    let codes: Vec<i8> = (0..n * k).map(|i| ((i * 7919 % 255) as i32 - 127) as i8).collect();
    let scales: Vec<f32> = (0..n * k / 32).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
    let zeros: Vec<f32> = (0..n * k / 32).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
    let packed: Vec<u8> = (0..n * k / 2).map(|i| (i * 131 % 256) as u8).collect();
    let forms = [
        QWeight::Q8 { n, k, codes, scales: scales.clone() },
        QWeight::Q4 { n, k, group: 32, packed, scales, zeros },
    ];
    for q in &forms {
        let deq = q.to_tensor();
        for m in [1, 3] {
            let want = naive(m, &x, &deq);
            let mut got = vec![0.0; m * n];
            linear(m, &x, q, &mut got);
            assert_close(&got, &want, &format!("{:?} m={m}", q.dtype()));
        }
        for (name, o) in every_kernel(&x[..k], q) {
            assert_close(&o, &naive(1, &x, &deq), &format!("{:?} {name}", q.dtype()));
        }
    }
}

/// The integer q8 scheme of the wasm kernel, through its portable reference [`fixed::dot`]:
/// the limbs rebuild `X` and stay within 2^-29 m of `x`; rows (longer than one flush) within the
/// documented bound of the f64 dot with the dequantized weights; all-zero and non-finite rows;
/// and the i32 lane bound of [`fixed::FLUSH`] on the extreme inputs (`dot` checks every add).
#[test]
fn fixed_point_q8_stays_within_its_bound() {
    let (n, k) = (23, 2 * fixed::FLUSH + 512);
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect();
    let q = QWeight::from_tensor(Tensor::new(vec![n, k], w), WeightDtype::Q8);
    let QWeight::Q8 { codes, scales, .. } = &q else { unreachable!() };
    // activations over several magnitudes (the small ones lose relative precision in X)
    let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0 * [1.0, 1e-3, 30.0][i % 3]).collect();
    let m = x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let fx = fixed::FixedX::new(&x).unwrap();
    for t in 0..k {
        let xx = ((fx.hi[t] as i64) << fixed::LIMB) + fx.lo[t] as i64;
        assert!((0..1 << fixed::LIMB).contains(&fx.lo[t]) && xx.abs() <= 1 << fixed::BITS);
        // the largest positive value is clamped to 2^28 - 1 (one unit)
        let ulp = if x[t] as f64 == m { 2f64.powi(-28) } else { 2f64.powi(-29) };
        assert!((xx as f64 * fx.unit - x[t] as f64).abs() <= m * ulp * (1.0 + 1e-9), "x[{t}]");
    }
    let want = naive(1, &x, &q.to_tensor());
    for j in 0..n {
        let row = &codes[j * k..(j + 1) * k];
        let got = fx.out(fixed::dot(row, &fx), scales[j]) as f64;
        let l1: f64 = row.iter().map(|&c| (c as f64).abs()).sum();
        let bound = scales[j] as f64 * l1 * m * 2f64.powi(-29) * (1.0 + 1e-6) + want[j].abs() * 2f64.powi(-23);
        assert!((got - want[j]).abs() <= bound, "row {j}: {got} vs {} (bound {bound})", want[j]);
        assert!((got - want[j]).abs() < 1e-4, "row {j}: {got} vs {}", want[j]);
    }
    let zero = fixed::FixedX::new(&[0.0; 64]).unwrap();
    assert_eq!(zero.out(fixed::dot(&codes[..64], &zero), scales[0]), 0.0);
    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        assert!(fixed::FixedX::new(&[1.0, bad, 2.0]).is_none());
    }
    // every lane at its largest: |q| = 128 against X = -2^28 (hi = -2^14) and 2^28 - 1, over two flushes
    let len = 2 * fixed::FLUSH + 16;
    for (v, xx) in [(1.0f32, (1i64 << fixed::BITS) - 1), (-1.0, -(1i64 << fixed::BITS))] {
        let fx = fixed::FixedX::new(&vec![v; len]).unwrap();
        assert_eq!(fixed::dot(&vec![-128i8; len], &fx), -128 * len as i64 * xx);
    }
}

/// The fixed-point conversion (eight values at a time in wasm SIMD128) against the scalar
/// [`fixed::to_fixed`], value by value, with ties (`X` exactly half-way: rounded to even) at every
/// position of the 8-value blocks and in the scalar tail, and `X = -2^28`.
#[test]
fn fixed_point_conversion_rounds_ties_to_even() {
    let half = 2f32.powi(-29); // with max |x| = 1: X = x · 2^28, so this is X = 0.5
    let ties = [half, 3.0 * half, 5.0 * half, -half, -3.0 * half, 7.0 * half, -1.0];
    let want_ties = [0, 2, 2, 0, -2, 4, -(1 << 28)];
    for len in [1usize, 7, 8, 9, 64, 77] {
        for shift in 0..ties.len() {
            let mut x: Vec<f32> = (0..len).map(|i| ((i * 31 % 97) as f32 - 48.0) / 61.0).collect();
            x[0] = 1.0;
            // (position, tie): distinct positions other than 0 (short rows hold fewer ties)
            let mut placed: Vec<(usize, usize)> = Vec::new();
            for i in 0..ties.len() {
                let t = (1 + i * 3 + shift) % len;
                if t != 0 && placed.iter().all(|&(u, _)| u != t) {
                    x[t] = ties[i];
                    placed.push((t, i));
                }
            }
            let fx = fixed::FixedX::new(&x).unwrap();
            let f = (1i64 << fixed::BITS) as f64;
            for t in 0..len {
                let q = fixed::to_fixed(x[t], f);
                assert_eq!((fx.hi[t], fx.lo[t]), ((q >> fixed::LIMB) as i16, (q & ((1 << fixed::LIMB) - 1)) as i16), "len {len} t {t}");
            }
            for &(t, i) in &placed {
                let xx = ((fx.hi[t] as i32) << fixed::LIMB) + fx.lo[t] as i32;
                assert_eq!(xx, want_ties[i], "len {len}: tie {} at {t}", ties[i]);
            }
            // x = max |x| itself: 2^28 clamped to the 29-bit 2^28 - 1
            assert_eq!(((fx.hi[0] as i32) << fixed::LIMB) + fx.lo[0] as i32, (1 << 28) - 1, "len {len}");
        }
    }
}

/// The 7-bit digits of `X` (the relaxed-SIMD q4 kernel's operands): they rebuild `X` exactly, the
/// top one a signed byte and the others in `0..128`, at both ends of the 29-bit range, at zero and
/// over a row of mixed values.
#[test]
fn fixed_point_digits_rebuild_x() {
    let mut x: Vec<f32> = (0..200).map(|i| ((i * 31 % 97) as f32 - 48.0) / 61.0 * [1.0, 1e-3, 1e-6][i % 3]).collect();
    x.extend([1.0, -1.0, 0.0, 2f32.powi(-20), -(2f32.powi(-28)), 0.999_999]);
    let fx = fixed::FixedX::new(&x).unwrap().with_digits();
    let len = x.len();
    assert_eq!(fx.digits.len(), 4 * len);
    let mut seen = (i64::MAX, i64::MIN);
    for t in 0..len {
        let d = [0, 1, 2, 3].map(|p| fx.digits[p * len + t] as i64);
        assert!(d[1..].iter().all(|v| (0..128).contains(v)), "t {t}: {d:?}");
        let xx = (d[0] << 21) + (d[1] << 14) + (d[2] << 7) + d[3];
        assert_eq!(xx, ((fx.hi[t] as i64) << fixed::LIMB) + fx.lo[t] as i64, "t {t}");
        seen = (seen.0.min(xx), seen.1.max(xx));
    }
    assert_eq!(seen, (-(1 << 28), (1 << 28) - 1));
}

/// q8 with one scale per row and per 32-weight block (GGUF Q8_0), with `k` not a multiple of
/// 64 (the kernels' 8- / 16- / 32-code tails; `k = 100`: AVX2's one-row path) and row counts
/// that leave rows after the last 4-row pass: every x86 kernel directly and the scalar one.
#[test]
fn q8_tails_match_their_dequantized_weights() {
    for (n, k, per_row) in [(13, 208, true), (11, 512, true), (7, 100, true), (9, 224, false), (6, 256, false)] {
        let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
        let codes: Vec<i8> = (0..n * k).map(|i| ((i * 7919 % 255) as i32 - 127) as i8).collect();
        let ns = if per_row { n } else { n * k / 32 };
        let scales: Vec<f32> = (0..ns).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
        let q = QWeight::Q8 { n, k, codes, scales };
        let want = naive(1, &x, &q.to_tensor());
        for (name, o) in every_kernel(&x, &q) {
            assert_close(&o, &want, &format!("n={n} k={k} per_row={per_row} {name}"));
        }
    }
}

/// The q4 form of the fixed-point matvec ([`fixed::q4_dot`], the wasm kernel's reference): rows
/// within the documented bound of the f64 sum `Σ_g scale_g Σ q x` for groups of 64, 128 and 256;
/// and the f32 exactness of the i32 lanes (checked in `q4_dot`) at the extremes: every code 15
/// against `X = -2^28` and `2^28 - 1` in groups of [`fixed::Q4_GROUP_MAX`].
#[test]
fn fixed_point_q4_stays_within_its_bound() {
    use crate::dtype::quant::q4_code;
    let (n, k) = (11, 1024);
    let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0 * [1.0, 1e-3, 30.0][i % 3]).collect();
    let m = x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let fx = fixed::FixedX::new(&x).unwrap();
    let packed: Vec<u8> = (0..n * k / 2).map(|i| (i * 131 % 256) as u8).collect();
    for group in [64, 128, 256] {
        let gpr = k / group;
        let scales: Vec<f32> = (0..n * gpr).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
        for j in 0..n {
            let row = &packed[j * k / 2..(j + 1) * k / 2];
            let sc = &scales[j * gpr..(j + 1) * gpr];
            let got = fixed::q4_dot(row, group, sc, &fx) as f64;
            let (mut want, mut l1, mut l1x) = (0.0f64, 0.0f64, 0.0f64);
            for t in 0..k {
                let (q, s) = (q4_code(row, t) as f64, sc[t / group].abs() as f64);
                want += sc[t / group] as f64 * q * x[t] as f64;
                l1 += s * q;
                l1x += s * q * (x[t].abs() as f64 + m * 2f64.powi(-29));
            }
            let bound = (l1 * m * 2f64.powi(-29) + (gpr + 4) as f64 * 2f64.powi(-24) * l1x) * (1.0 + 1e-6) + want.abs() * 2f64.powi(-23);
            assert!((got - want).abs() <= bound, "group {group} row {j}: {got} vs {want} (bound {bound})");
            assert!((got - want).abs() < 1e-4, "group {group} row {j}: {got} vs {want}");
        }
    }
    let g = fixed::Q4_GROUP_MAX;
    for v in [1.0f32, -1.0] {
        let fx = fixed::FixedX::new(&vec![v; 2 * g]).unwrap();
        let got = fixed::q4_dot(&vec![0xff; g], g, &[1.0, 0.5], &fx);
        assert_eq!(got, 15.0 * v * 1.5 * g as f32);
    }
}
