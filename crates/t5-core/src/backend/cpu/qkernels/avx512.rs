//! AVX-512 for q4 (groups of a multiple of 64, torchao's 128): 16 weights per instruction, so
//! the nibble unpacking, convert and multiply-add cost half of AVX2's per weight: q4 decode is
//! compute-bound on AVX2 (about as many operations per weight as q8, at half the bytes). Same
//! products and per-group arithmetic as the AVX2 kernel; only the summation order differs.
//! Groups of a multiple of 128 (torchao's) take [`avx512::q4_lut`] (table lookups instead of
//! widen + convert, about 20% fewer cycles per weight); [`avx512::q4`] covers groups of 64.
//! q8 (one scale per row, or per 32-weight block) takes [`avx512::q8`]: 4 rows per pass with
//! software prefetch, as [`avx512::q4_lut`] (decode reads its ~39 MB of weights per step at
//! about 27 GB/s, where AVX2's one-row-at-a-time kernel reached about 16); bf16 takes
//! [`avx512::bf16`], the same pass structure. The q8 and bf16 passes take rows `n / 4` apart
//! ([`strided`]), not adjacent ones that share a 4 KiB page: on an AMD EPYC (Zen 4) host that
//! took t5-small decode at 1 thread from 208-212 to 373-390 tok/s (q8) and 107-127 to 158-226
//! (bf16).

use crate::backend::cpu::gemm::strided;
use crate::dtype::QWeight;
use core::arch::x86_64::*;

#[target_feature(enable = "avx512f")]
pub unsafe fn q4(x: &[f32], w: &QWeight, out: &mut [f32]) {
    let QWeight::Q4 { n, k, group, packed, scales, zeros } = w else { unreachable!() };
    let (n, k, group) = (*n, *k, *group);
    let gpr = k / group;
    let xp = x.as_ptr();
    let xs = super::group_sums(&x[..k], group);
    let mask = _mm512_set1_epi32(15);
    for j in 0..n {
        let row = packed.as_ptr().add(j * k / 2);
        let mut tot = _mm512_setzero_ps();
        let mut zs = 0.0f32;
        for g in 0..gpr {
            let (mut a0, mut a1, mut a2, mut a3) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
            let mut base = g * group;
            while base < (g + 1) * group {
                // 32 bytes = 64 weights: byte i → weights base+i (low nibble) and base+32+i (high)
                let p = row.add(base / 2);
                let v0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i));
                let v1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(p.add(16) as *const __m128i));
                a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v0, mask)), _mm512_loadu_ps(xp.add(base)), a0);
                a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v1, mask)), _mm512_loadu_ps(xp.add(base + 16)), a1);
                a2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v0)), _mm512_loadu_ps(xp.add(base + 32)), a2);
                a3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v1)), _mm512_loadu_ps(xp.add(base + 48)), a3);
                base += 64;
            }
            let acc = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
            let sc = scales[j * gpr + g];
            tot = _mm512_fmadd_ps(acc, _mm512_set1_ps(sc), tot);
            zs += (zeros[j * gpr + g] - 8.0 * sc) * xs[g];
        }
        out[j] = _mm512_reduce_add_ps(tot) + zs;
    }
}

/// q4 with groups of a multiple of 128: 128 weights (one 64-byte load) per step, without
/// widening or integer→float conversion. `vpermps` with the table `0.0..=15.0` turns the low 4
/// bits of each 32-bit lane into that code as a float (the index's higher bits are ignored),
/// so a code only has to reach the bottom of its lane: lane `i` of the load holds bytes
/// `4i..4i + 4`, i.e. 8 codes, and the one at bit `4s` gets there by a shift right by `4s`
/// (none for `s = 0`). Per 128 weights: 7 shifts, 8 table lookups, 8 multiply-adds against
/// `x` laid out to match ([`spread128`]), where the widening kernel [`q4`] needs 4 widenings,
/// 4 masks, 4 shifts and 8 conversions. (Loading at byte offsets 1..3 instead of shifting by
/// 8, 16, 24 splits cache lines and is slower.) [`ROWS`] rows per pass share the `x` loads;
/// the zero-point term goes into the same 16 lanes per group ([`q4_lut_rows`]), so a row ends
/// in one horizontal sum; the weights are prefetched [`PREFETCH`] bytes ahead. Same products
/// `q x` as [`q4`]; the per-group terms are the same up to summation order.
#[target_feature(enable = "avx512f")]
pub unsafe fn q4_lut(x: &[f32], w: &QWeight, out: &mut [f32]) {
    let QWeight::Q4 { n, k, group, packed, scales, zeros } = w else { unreachable!() };
    let (n, k, group) = (*n, *k, *group);
    debug_assert!(group % 128 == 0 && packed.len() == n * k / 2);
    let gpr = k / group;
    let xt = spread128(&x[..k]);
    let xsum = lane_sums(&xt, group);
    let m = Matrix { packed: packed.as_ptr(), scales: scales.as_ptr(), zeros: zeros.as_ptr(), k, group, gpr, xt: xt.as_ptr() as *const f32, xsum: xsum.as_ptr() as *const f32 };
    // adjacent rows here, not [`strided`] ones: at k = 512 a q4 row is 256 bytes, so a pass
    // reads one contiguous kilobyte, and rows `n / 4` apart were no faster for t5-small decode
    // on the AMD EPYC (Zen 4) host where they made q8 and bf16 1.6-1.9x faster (4 interleaved
    // rounds: 467 / 742 tok/s at 1 / 2 threads against 518 / 828 adjacent, within that host's
    // noise)
    let mut j = 0;
    while j + ROWS <= n {
        _mm_storeu_ps(out[j..j + ROWS].as_mut_ptr(), hsum4(q4_lut_rows(&m, core::array::from_fn(|r| j + r))));
        j += ROWS;
    }
    while j < n {
        out[j] = _mm512_reduce_add_ps(q4_lut_rows(&m, [j])[0]);
        j += 1;
    }
}

/// `s`'s four lanes into `out` at `rows`.
#[inline(always)]
unsafe fn scatter(rows: [usize; 4], s: __m128, out: &mut [f32]) {
    let mut v = [0.0f32; 4];
    _mm_storeu_ps(v.as_mut_ptr(), s);
    for (&j, v) in rows.iter().zip(v) {
        out[j] = v;
    }
}

/// Weight rows [`q4_lut`] takes per pass (each `x` load serves them all; 2 and 8 measured
/// slower); [`hsum4`] finishes them.
const ROWS: usize = 4;

/// Software prefetch distance in bytes ahead of each row's loads. The decode step's weights
/// (about 22 MB at q4) come from L3 at best: without it the kernel reads about 10 GB/s there,
/// with it about 14 (2–8 KB measured alike).
const PREFETCH: usize = 4096;

/// The lane sums of 4 vectors, with shared shuffles (about 14 instructions, where 4 separate
/// horizontal sums take about 36).
#[inline(always)]
unsafe fn hsum4(t: [__m512; 4]) -> __m128 {
    // 128-bit quarters [a0 + a2, a1 + a3, b0 + b2, b1 + b3] for the pairs (t0, t1), (t2, t3)
    let s01 = _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(t[0], t[1]), _mm512_shuffle_f32x4::<0xee>(t[0], t[1]));
    let s23 = _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(t[2], t[3]), _mm512_shuffle_f32x4::<0xee>(t[2], t[3]));
    // quarter r: 4 partial sums of t[r]
    let u = _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(s01, s23), _mm512_shuffle_f32x4::<0xdd>(s01, s23));
    // within each quarter: every lane the quarter's total
    let u = _mm512_add_ps(u, _mm512_permute_ps::<0x4e>(u));
    let u = _mm512_add_ps(u, _mm512_permute_ps::<0xb1>(u));
    _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), u))
}

/// What [`q4_lut_rows`] reads: the q4 matrix (`k` inputs, groups of `group`, `gpr` per row),
/// `x` laid out by [`spread128`] and its per-group lane sums ([`lane_sums`]).
struct Matrix {
    packed: *const u8,
    scales: *const f32,
    zeros: *const f32,
    k: usize,
    group: usize,
    gpr: usize,
    xt: *const f32,
    xsum: *const f32,
}

/// Rows `js`, each in 16 lanes that sum to its output: per group `scale · Σ q x` plus
/// the zero-point term `(zero - 8 scale) · Σ x`, the latter against the group's lane sums of `x`
/// (so no scalar work per group).
#[inline(always)]
unsafe fn q4_lut_rows<const R: usize>(m: &Matrix, js: [usize; R]) -> [__m512; R] {
    let table = _mm512_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0);
    let rows: [*const u8; R] = js.map(|j| m.packed.add(j * m.k / 2));
    let mut tot = [_mm512_setzero_ps(); R];
    for g in 0..m.gpr {
        // Σ q x over the group in two accumulators per row (even / odd nibble positions)
        let mut a = [[_mm512_setzero_ps(); 2]; R];
        let mut b = g * m.group;
        while b < (g + 1) * m.group {
            let xb = m.xt.add(b);
            let v: [__m512i; R] = core::array::from_fn(|r| _mm512_loadu_si512(rows[r].add(b / 2) as *const _));
            for row in rows {
                // a hint only (never faults), so it may point past the matrix
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(b / 2 + PREFETCH) as *const i8);
            }
            macro_rules! nibble {
                ($s:literal) => {
                    let xv = _mm512_loadu_ps(xb.add(16 * $s));
                    for r in 0..R {
                        let q = _mm512_permutexvar_ps(_mm512_srli_epi32::<{ 4 * $s }>(v[r]), table);
                        a[r][$s % 2] = _mm512_fmadd_ps(q, xv, a[r][$s % 2]);
                    }
                };
            }
            nibble!(0);
            nibble!(1);
            nibble!(2);
            nibble!(3);
            nibble!(4);
            nibble!(5);
            nibble!(6);
            nibble!(7);
            b += 128;
        }
        let xs = _mm512_loadu_ps(m.xsum.add(16 * g));
        for r in 0..R {
            let i = js[r] * m.gpr + g;
            let sc = _mm512_set1_ps(*m.scales.add(i));
            let zp = _mm512_fmadd_ps(sc, _mm512_set1_ps(-8.0), _mm512_set1_ps(*m.zeros.add(i)));
            tot[r] = _mm512_fmadd_ps(_mm512_add_ps(a[r][0], a[r][1]), sc, tot[r]);
            tot[r] = _mm512_fmadd_ps(xs, zp, tot[r]);
        }
    }
    tot
}

/// q8 with one scale per row (torchao int8) or per 32-weight block (GGUF Q8_0), `k % 16 == 0`
/// (per row) or `k % 32 == 0` (blocks). Per 16 codes: one sign-extending load
/// (`vpmovsxbd`), one exact conversion, one multiply-add against `x` as it is: three vector
/// operations, against 4 + 2 per 16 for AVX2's two halves. [`Q8_ROWS`] rows per pass share
/// the `x` loads and one horizontal-sum sequence ([`hsum4`]); each row's codes are
/// prefetched a whole number of passes ahead ([`Q8Matrix::ahead`]). Products `q x` exact as
/// in every kernel; per row `Σ q x` is scaled once (per block for Q8_0: block sums scaled and
/// accumulated in the lanes), as the AVX2 kernel does, up to summation order.
#[target_feature(enable = "avx512f")]
pub unsafe fn q8(x: &[f32], w: &QWeight, out: &mut [f32]) {
    let QWeight::Q8 { n, k, codes, scales } = w else { unreachable!() };
    let (n, k) = (*n, *k);
    let per_row = scales.len() == n;
    debug_assert!(codes.len() == n * k && if per_row { k % 16 == 0 } else { scales.len() * 32 == n * k && k % 32 == 0 });
    assert!(x.len() >= k && out.len() >= n);
    let m = Q8Matrix { codes: codes.as_ptr(), scales: scales.as_ptr(), k, x: x.as_ptr(), ahead: PREFETCH.div_ceil(k) * k };
    let pass = |rows: [usize; Q8_ROWS], out: &mut [f32]| {
        let s = if per_row {
            _mm_mul_ps(hsum4(q8_rows(&m, rows)), _mm_setr_ps(scales[rows[0]], scales[rows[1]], scales[rows[2]], scales[rows[3]]))
        } else {
            hsum4(q8_0_rows(&m, rows))
        };
        scatter(rows, s, out)
    };
    strided::<Q8_ROWS>(n, out, pass, |[j], out| {
        out[j] = if per_row { _mm512_reduce_add_ps(q8_rows(&m, [j])[0]) * scales[j] } else { _mm512_reduce_add_ps(q8_0_rows(&m, [j])[0]) }
    });
}

/// Weight rows [`q8`] takes per pass (each `x` load serves them all, rows `n / 4` apart:
/// [`strided`]); [`hsum4`] finishes them.
const Q8_ROWS: usize = 4;

/// What the q8 row kernels read: the codes (`k` per row), the scales (one per row or per 32
/// codes), `x`, and how far ahead of each row's loads to prefetch: [`PREFETCH`] rounded up to
/// whole rows, so that every prefetch lands on the columns that the same stream reads in a later
/// pass ([`strided`]: the rows of one stream follow one another).
struct Q8Matrix {
    codes: *const i8,
    scales: *const f32,
    k: usize,
    x: *const f32,
    ahead: usize,
}

/// 16 codes at `p` as exact floats.
#[inline(always)]
unsafe fn q8x16(p: *const i8) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)))
}

/// Rows `js` with one scale per row: per row 16 lanes summing to `Σ q x` (unscaled).
#[inline(always)]
unsafe fn q8_rows<const R: usize>(m: &Q8Matrix, js: [usize; R]) -> [__m512; R] {
    let rows: [*const i8; R] = js.map(|j| m.codes.add(j * m.k));
    // two accumulators per row (even / odd 16-code runs)
    let mut a = [[_mm512_setzero_ps(); 2]; R];
    let mut t = 0;
    while t + 64 <= m.k {
        for row in rows {
            // a hint only (never faults), so it may point past the matrix
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(t + m.ahead));
        }
        for s in 0..4 {
            let xv = _mm512_loadu_ps(m.x.add(t + 16 * s));
            for r in 0..R {
                a[r][s % 2] = _mm512_fmadd_ps(q8x16(rows[r].add(t + 16 * s)), xv, a[r][s % 2]);
            }
        }
        t += 64;
    }
    while t < m.k {
        let xv = _mm512_loadu_ps(m.x.add(t));
        for r in 0..R {
            a[r][0] = _mm512_fmadd_ps(q8x16(rows[r].add(t)), xv, a[r][0]);
        }
        t += 16;
    }
    core::array::from_fn(|r| _mm512_add_ps(a[r][0], a[r][1]))
}

/// Rows `js` with one scale per 32 codes (GGUF Q8_0): per block `Σ q x` in 16 lanes,
/// scaled into the row's lanes (two running totals: even / odd blocks).
#[inline(always)]
unsafe fn q8_0_rows<const R: usize>(m: &Q8Matrix, js: [usize; R]) -> [__m512; R] {
    let bpr = m.k / 32;
    let rows: [*const i8; R] = js.map(|j| m.codes.add(j * m.k));
    let sc: [*const f32; R] = js.map(|j| m.scales.add(j * bpr));
    let mut tot = [[_mm512_setzero_ps(); 2]; R];
    let mut t = 0;
    while t < m.k {
        if t % 64 == 0 {
            for row in rows {
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(t + m.ahead));
            }
        }
        let (x0, x1) = (_mm512_loadu_ps(m.x.add(t)), _mm512_loadu_ps(m.x.add(t + 16)));
        let b = t / 32;
        for r in 0..R {
            let p = _mm512_fmadd_ps(q8x16(rows[r].add(t + 16)), x1, _mm512_mul_ps(q8x16(rows[r].add(t)), x0));
            tot[r][b % 2] = _mm512_fmadd_ps(p, _mm512_set1_ps(*sc[r].add(b)), tot[r][b % 2]);
        }
        t += 32;
    }
    core::array::from_fn(|r| _mm512_add_ps(tot[r][0], tot[r][1]))
}

/// bf16 weights (`k % 16 == 0`), one input row: the q8 kernel's pass structure ([`Q8_ROWS`]
/// rows per pass sharing the `x` loads and [`hsum4`], software prefetch whole passes ahead),
/// 16 weights per load, widened and shifted into the top half of each lane (exact). (The same
/// for fp32 weights measured no faster: a decode step's 154 MB fall out of the fast cache.)
#[target_feature(enable = "avx512f")]
pub unsafe fn bf16(x: &[f32], w: &QWeight, out: &mut [f32]) {
    let QWeight::BF16 { n, k, data } = w else { unreachable!() };
    let (n, k) = (*n, *k);
    assert!(k % 16 == 0 && data.len() == n * k && x.len() >= k && out.len() >= n);
    let ahead = PREFETCH.div_ceil(k * 2) * k * 2;
    let at = |j: usize| data.as_ptr().add(j * k);
    strided::<Q8_ROWS>(n, out, |js, out| scatter(js, hsum4(bf16_rows(x.as_ptr(), k, js.map(at), ahead)), out), |[j], out| {
        out[j] = _mm512_reduce_add_ps(bf16_rows(x.as_ptr(), k, [at(j)], ahead)[0])
    });
}

/// bf16 rows (`k` each) at `rows`: per row 16 lanes summing to `Σ w x`.
#[inline(always)]
unsafe fn bf16_rows<const R: usize>(x: *const f32, k: usize, rows: [*const u16; R], ahead: usize) -> [__m512; R] {
    let load = |p: *const u16| _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i))));
    let mut a = [[_mm512_setzero_ps(); 2]; R];
    let mut t = 0;
    while t < k {
        if t % 32 == 0 {
            // once per 64-byte line of each row; a hint only (never faults), so it may point past the matrix
            for r in 0..R {
                _mm_prefetch::<_MM_HINT_T0>((rows[r].add(t) as *const i8).wrapping_add(ahead));
            }
        }
        let xv = _mm512_loadu_ps(x.add(t));
        for r in 0..R {
            a[r][(t / 16) % 2] = _mm512_fmadd_ps(load(rows[r].add(t)), xv, a[r][(t / 16) % 2]);
        }
        t += 16;
    }
    core::array::from_fn(|r| _mm512_add_ps(a[r][0], a[r][1]))
}

/// Per group of `group` inputs, 16 lanes summing to `Σ x` over the group: the lane-wise sum of
/// the group's runs in `xt` ([`spread128`]).
fn lane_sums(xt: &[Lanes], group: usize) -> Vec<Lanes> {
    xt.chunks_exact(group / 16)
        .map(|runs| {
            let mut s = [0.0f32; 16];
            for run in runs {
                for (a, &v) in s.iter_mut().zip(&run.0) {
                    *a += v;
                }
            }
            Lanes(s)
        })
        .collect()
}

/// `x` laid out for [`q4_lut`]: per 128 weights at `b`, 8 runs of 16, one per nibble position
/// `s` of the 32-bit lanes: `xt[b + 16s + i] = x[b + 64(i / 8) + 32(s % 2) + 4(i % 8) + s / 2]`,
/// the weight whose code lane `i` holds at bit `4s` (byte `4(i % 8) + s / 2` of 32-byte chunk
/// `i / 8`, low nibble for even `s`, high for odd).
pub(super) fn spread128(x: &[f32]) -> Vec<Lanes> {
    let mut xt = vec![Lanes([0.0; 16]); x.len() / 16];
    for (o, c) in xt.chunks_exact_mut(8).zip(x.chunks_exact(128)) {
        for s in 0..8 {
            for i in 0..16 {
                o[s].0[i] = c[64 * (i / 8) + 32 * (s % 2) + 4 * (i % 8) + s / 2];
            }
        }
    }
    xt
}

/// 16 floats on a cache line of their own (aligned loads of `x` never split).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Lanes(pub [f32; 16]);
