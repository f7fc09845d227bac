use super::packed::{every_isa, gemm_with};
use super::*;

fn data(len: usize, a: usize, b: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * a % b) as f32 - (b / 2) as f32) / (b as f32 / 4.0)).collect()
}

/// `Σ_t x[i, t] · w[j, t]` in f64.
fn naive_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32]) -> Vec<f64> {
    let mut o = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            o[i * n + j] = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum();
        }
    }
    o
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - r).abs() < tol, "{what} [{i}]: {g} vs {r}");
    }
}

#[test]
fn matmul_matches_naive_f64() {
    for (m, n, k) in [(7, 11, 37), (1, 11, 37), (3, 5, 64), (4, 9, 16)] {
        let x = data(m * k, 37, 101);
        let w = data(n * k, 53, 97);
        let want = naive_nt(m, n, k, &x, &w);
        let mut out = vec![0.0; m * n];
        matmul_nt(m, n, k, &x, &w, &mut out);
        assert_close(&out, &want, 1e-4, &format!("matmul_nt {m}x{n}x{k}"));
        let mut sc = vec![0.0; m * n];
        scalar::matmul_nt(m, n, k, &x, &w, &mut sc);
        assert_close(&sc, &want, 1e-4, "scalar tiles");
    }
}

/// One row against rows `ldw` apart: each output bit-identical to the one-row product of the
/// same rows stored contiguously (dispatch and the scalar kernel), for `k` with and without a
/// SIMD tail and `n` leaving single rows after the passes.
#[test]
fn strided_rows_are_bit_identical_to_contiguous_ones() {
    for (n, k, ldw) in [(19, 64, 200), (8, 37, 37), (3, 1, 5), (0, 16, 16), (17, 72, 72 * 3)] {
        let x = data(k, 37, 101);
        let w = data(n.max(1) * ldw, 53, 97);
        let rows: Vec<f32> = (0..n).flat_map(|j| w[j * ldw..j * ldw + k].to_vec()).collect();
        let (mut want, mut got) = (vec![0.0; n], vec![0.0; n]);
        matmul_nt(1, n, k, &x, &rows, &mut want);
        matvec_strided(n, k, &x, &w, ldw, &mut got);
        assert_eq!(got, want, "dispatch {n}x{k} ldw {ldw}");
        scalar::matmul_nt(1, n, k, &x, &rows, &mut want);
        scalar::matvec(n, k, &x, &w, ldw, &mut got);
        assert_eq!(got, want, "scalar {n}x{k} ldw {ldw}");
        assert_close(&got, &naive_nt(1, n, k, &x, &rows), 1e-4, "against f64");
    }
}

/// Every packed-panel micro-kernel this machine runs, directly, against f64: shapes that leave
/// partial row blocks and partial panels for every ISA's `MR × NR`, and `k` of 0, 1 and odd.
#[test]
fn every_packed_kernel_matches_naive_f64() {
    for isa in every_isa() {
        for (m, n, k) in [(1, 1, 1), (13, 37, 67), (25, 70, 128), (4, 33, 0), (30, 64, 300)] {
            let x = data(m * k, 37, 101);
            let w = data(n * k, 53, 97);
            let want = naive_nt(m, n, k, &x, &w);
            let mut out = vec![f32::NAN; m * n];
            gemm_with(isa, Operands { k, x: &x, ldx: k, out: &mut out, ldo: n }, Block::all(m, n), &mut pack_nt(&w, k, k));
            assert_close(&out, &want, 2e-4, &format!("{} {m}x{n}x{k}", isa.name));
        }
    }
}

/// Panels packed once ([`Panels`]) give the bits of packing on every call, for the whole product
/// and for blocks on and off panel boundaries; panels packed for another kernel are copied out.
#[test]
fn panels_packed_once_are_bit_identical() {
    for (m, n, k) in [(4, 1, 1), (13, 37, 67), (30, 70, 128), (5, 33, 0)] {
        let x = data(m * k, 37, 101);
        let w = data(n * k, 53, 97);
        let mut want = vec![f32::NAN; m * n];
        gemm(Operands { k, x: &x, ldx: k, out: &mut want, ldo: n }, Block::all(m, n), &mut pack_nt(&w, k, k));
        let panels = Panels::pack(&w, n, k);
        assert_eq!(panels.dims(), (n, k));
        let mut got = vec![f32::NAN; m * n];
        gemm_panels(Operands { k, x: &x, ldx: k, out: &mut got, ldo: n }, Block::all(m, n), &panels);
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{m}x{n}x{k} whole");
        let mut parts = vec![f32::NAN; m * n];
        let (mh, nh) = (m / 2, n / 3);
        for (r, c) in [(0..mh, 0..nh), (0..mh, nh..n), (mh..m, 0..n)] {
            gemm_panels(Operands { k, x: &x, ldx: k, out: &mut parts, ldo: n }, Block { rows: r, cols: c }, &panels);
        }
        assert!(parts.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{m}x{n}x{k} blocks");
        // panels of another register width (another kernel) still give this kernel's bits
        for isa in every_isa() {
            let other = Panels::pack_for(isa, &w, n, k);
            let mut got = vec![f32::NAN; m * n];
            gemm_panels(Operands { k, x: &x, ldx: k, out: &mut got, ldo: n }, Block::all(m, n), &other);
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{m}x{n}x{k} panels of {}", isa.name);
        }
    }
}

/// Any split of the outputs into blocks gives bit-identical results, and a block writes only its
/// own outputs; strided operands (`ldx > k`, `ldo > n`) and the `[k × n]` packer.
#[test]
fn blocks_are_bit_identical_to_the_whole() {
    let (m, n, k) = (29, 45, 77);
    let x = data(m * k, 37, 101);
    let w = data(n * k, 53, 97);
    for isa in every_isa() {
        let mut whole = vec![0.0; m * n];
        gemm_with(isa, Operands { k, x: &x, ldx: k, out: &mut whole, ldo: n }, Block::all(m, n), &mut pack_nt(&w, k, k));
        for (rs, cs) in [(vec![0, 5, 17, 29], vec![0, 45]), (vec![0, 29], vec![0, 3, 20, 45]), (vec![0, 1, 2, 29], vec![0, 7, 8, 45])] {
            let mut parts = vec![f32::NAN; m * n];
            for r in rs.windows(2) {
                for c in cs.windows(2) {
                    let block = Block { rows: r[0]..r[1], cols: c[0]..c[1] };
                    gemm_with(isa, Operands { k, x: &x, ldx: k, out: &mut parts, ldo: n }, block, &mut pack_nt(&w, k, k));
                }
            }
            assert!(parts.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits()), "{} rows {rs:?} cols {cs:?}", isa.name);
        }
        // a block leaves the rest alone
        let mut one = vec![-7.0; m * n];
        gemm_with(isa, Operands { k, x: &x, ldx: k, out: &mut one, ldo: n }, Block { rows: 3..9, cols: 10..12 }, &mut pack_nt(&w, k, k));
        for i in 0..m {
            for j in 0..n {
                let inside = (3..9).contains(&i) && (10..12).contains(&j);
                assert_eq!(one[i * n + j].to_bits(), (if inside { whole[i * n + j] } else { -7.0 }).to_bits(), "{} ({i},{j})", isa.name);
            }
        }
        // B = wᵀ stored [k × n] with a wider row stride, x and out strided
        let (ldb, ldx, ldo) = (n + 3, k + 5, n + 2);
        let mut b = vec![0.0f32; k * ldb];
        let mut xs = vec![0.0f32; m * ldx];
        for t in 0..k {
            for j in 0..n {
                b[t * ldb + j] = w[j * k + t];
            }
        }
        for i in 0..m {
            xs[i * ldx..i * ldx + k].copy_from_slice(&x[i * k..(i + 1) * k]);
        }
        let mut nn = vec![0.0; m * ldo];
        gemm_with(isa, Operands { k, x: &xs, ldx, out: &mut nn, ldo }, Block::all(m, n), &mut pack_nn(&b, ldb));
        for i in 0..m {
            assert_eq!(nn[i * ldo..i * ldo + n], whole[i * n..(i + 1) * n], "{} nn row {i}", isa.name);
        }
    }
}

/// `matmul_nt_block` computes each output as `matmul_nt` does, on both sides of
/// [`PACKED_MIN_ROWS`].
#[test]
fn matmul_nt_block_matches_matmul_nt() {
    for m in [1, 3, PACKED_MIN_ROWS, 19] {
        let (n, k) = (21, 40);
        let x = data(m * k, 37, 101);
        let w = data(n * k, 53, 97);
        let mut whole = vec![0.0; m * n];
        matmul_nt(m, n, k, &x, &w, &mut whole);
        let mut parts = vec![0.0; m * n];
        for c in [0..5, 5..21] {
            matmul_nt_block(m, n, k, &x, &w, &mut parts, Block { rows: 0..m, cols: c });
        }
        assert!(parts.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits()), "m = {m}");
    }
}

mod int {
    use super::super::int::{every_int, int_gemm_with, reference, FixedRows, IntWeights};
    use super::super::Block;
    use crate::dtype::{QWeight, WeightDtype};
    use crate::tensor::Tensor;

    /// q8 (one scale per row) and q4 (groups of 64, 128, 256) weights, and their dequantized f32.
    fn forms(n: usize, k: usize) -> Vec<(QWeight, Vec<f32>)> {
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect();
        let mut v = vec![QWeight::from_tensor(Tensor::new(vec![n, k], w), WeightDtype::Q8)];
        for group in [64, 128, 256].into_iter().filter(|g| k % g == 0) {
            let gs = n * k / group;
            let scales: Vec<f32> = (0..gs).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
            let zeros: Vec<f32> = (0..gs).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
            let packed: Vec<u8> = (0..n * k / 2).map(|i| (i * 131 % 256) as u8).collect();
            v.push(QWeight::Q4 { n, k, group, packed, scales, zeros });
        }
        v.into_iter().map(|q| { let d = q.to_tensor().data; (q, d) }).collect()
    }

    fn int_form(q: &QWeight) -> (IntWeights<'_>, Option<usize>) {
        match q {
            QWeight::Q8 { codes, scales, .. } => (IntWeights::Q8 { codes, scales }, None),
            QWeight::Q4 { group, packed, scales, zeros, .. } => (IntWeights::Q4 { packed, group: *group, scales, zeros }, Some(*group)),
            _ => unreachable!(),
        }
    }

    /// Every integer kernel, directly: within 1e-4 of the f64 product with the dequantized weights,
    /// bit-identical to the reference (the integer matvec's sums) and, in wasm, to the integer
    /// matvec kernel run row by row; any split into blocks bit-identical to the whole; partial tiles
    /// in both directions, odd row and column counts, `k` not a multiple of 32.
    #[test]
    fn every_int_kernel_matches_reference_and_f64() {
        for (m, n, k) in [(5, 7, 512), (13, 11, 192), (1, 3, 64), (9, 5, 48), (6, 4, 2048 + 64)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0 * [1.0, 1e-3, 3.0][i % 3]).collect();
            for (q, deq) in forms(n, k) {
                let (iw, group) = int_form(&q);
                if !iw.fits(k) {
                    continue;
                }
                let fx = FixedRows::new(m, k, &x, group).unwrap();
                // the relaxed-SIMD q4 matvec: the reference's exact integer lane sums (the lanes of
                // fixed::q4_lane, from 7-bit digits), its multiply-adds fused: within the rounding
                // of the f32 group sums of the reference
                #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
                if let (Some(g), QWeight::Q4 { packed, scales, .. }) = (group, &q) {
                    for i in 0..m {
                        let mut row = vec![f32::NAN; n];
                        crate::backend::cpu::qkernels::matvec(&x[i * k..(i + 1) * k], &q, &mut row);
                        for j in 0..n {
                            let codes = &packed[j * k / 2..(j + 1) * k / 2];
                            let l1: f64 = (0..k).map(|t| (scales[j * (k / g) + t / g] as f64 * crate::dtype::quant::q4_code(codes, t) as f64 * x[i * k + t] as f64).abs()).sum();
                            let want = reference(&fx, &iw, k, i, j);
                            let tol = (k / g + 4) as f64 * 2f64.powi(-23) * l1;
                            assert!((row[j] as f64 - want as f64).abs() <= tol, "q4 g{g} ({i},{j}): {} vs {want} (tol {tol})", row[j]);
                        }
                    }
                }
                for isa in every_int() {
                    let mut out = vec![f32::NAN; m * n];
                    int_gemm_with(isa, &fx, &iw, k, &mut out, n, Block::all(m, n));
                    for i in 0..m {
                        // the relaxed-SIMD build's q4 matvec sums 7-bit digits in other lanes
                        // (fixed::q4_lane) and fuses its multiply-adds: no tile here sums as it does
                        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                        if group.is_none() || !cfg!(target_feature = "relaxed-simd") {
                            let mut row = vec![f32::NAN; n];
                            crate::backend::cpu::qkernels::matvec(&x[i * k..(i + 1) * k], &q, &mut row);
                            let got = &out[i * n..(i + 1) * n];
                            assert!(got.iter().zip(&row).all(|(a, b)| a.to_bits() == b.to_bits()), "{} {:?} row {i} vs matvec", isa.name, q.dtype());
                        }
                        for j in 0..n {
                            let want: f64 = (0..k).map(|t| x[i * k + t] as f64 * deq[j * k + t] as f64).sum();
                            let got = out[i * n + j];
                            assert!((got as f64 - want).abs() < 1e-4, "{} {:?} ({i},{j}): {got} vs {want}", isa.name, q.dtype());
                            // the reference's q4 multiply-adds are unfused; the relaxed-SIMD build
                            // fuses them, in the matvec (checked above) as here
                            if group.is_none() || !cfg!(target_feature = "relaxed-simd") {
                                assert_eq!(got.to_bits(), reference(&fx, &iw, k, i, j).to_bits(), "{} {:?} ({i},{j}) vs reference", isa.name, q.dtype());
                            }
                        }
                    }
                    let (mh, nh) = (m / 2, n / 2 + 1);
                    let mut parts = vec![f32::NAN; m * n];
                    for (r, c) in [(0..mh, 0..nh), (mh..m, 0..nh), (0..m, nh..n)] {
                        int_gemm_with(isa, &fx, &iw, k, &mut parts, n, Block { rows: r, cols: c });
                    }
                    assert!(parts.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()), "{} blocks", isa.name);
                }
            }
        }
        // a row with a non-finite value has no fixed-point form
        assert!(FixedRows::new(2, 4, &[0.0, 1.0, 2.0, 3.0, 1.0, f32::NAN, 0.0, 0.0], None).is_none());
    }
}
