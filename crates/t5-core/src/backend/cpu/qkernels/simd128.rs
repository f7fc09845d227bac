//! WASM SIMD128 one-row kernels (fused multiply-adds in the relaxed-SIMD build).

use crate::backend::cpu::gemm::simd128::{hsum, madd};
use crate::backend::cpu::gemm::strided;
use crate::dtype::QWeight;
use core::arch::wasm32::*;

/// f16 bits (in the low 16 bits of each u32 lane) → f32, exact for finite values (normal and
/// subnormal): the exponent is rebased by multiplying by 2^112. Weights stored as f16 are finite.
#[inline(always)]
fn f16_to_f32(h: v128) -> v128 {
    let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
    let mag = f32x4_mul(i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13), f32x4_splat(f32::from_bits(0x7780_0000))); // 2^112
    v128_or(mag, sign)
}

/// `input`'s fixed-point form, when it has one, serves q8 with a scale per row and q4 with groups
/// of 64 to 256 (see [`super::RowInput`]); other forms take its floats.
pub fn matvec(input: &super::RowInput, w: &QWeight, out: &mut [f32]) {
    let x = input.x;
    let (n, k) = w.dims();
    let xp = x.as_ptr();
    // SAFETY (all loads below): rows hold k elements, t + 8 <= k8 <= k.
    unsafe {
        match w {
            QWeight::F32 { .. } => super::scalar::matvec(x, w, out),
            QWeight::F16 { data, .. } => {
                for j in 0..n {
                    let r = data.as_ptr().add(j * k);
                    out[j] = dot8(xp, k, |t| {
                        let v = v128_load(r.add(t) as *const v128);
                        (f16_to_f32(u32x4_extend_low_u16x8(v)), f16_to_f32(u32x4_extend_high_u16x8(v)))
                    }, |t| half::f16::from_bits(*r.add(t)).to_f32());
                }
            }
            QWeight::BF16 { data, .. } => {
                let xt = deinterleave8(&x[..k]);
                let (d, xt) = (data.as_ptr(), xt.as_ptr());
                strided::<R>(n, out, |rows, out| bf16_rows(xp, xt, k, d, rows, out), |row, out| bf16_rows(xp, xt, k, d, row, out));
            }
            QWeight::Q8 { codes, scales, .. } => {
                // one scale per row (group = k) or per 32-weight block (GGUF Q8_0)
                let group = crate::dtype::quant::q8_group(n, k, scales.len());
                if group % 16 != 0 || k % group != 0 {
                    return super::scalar::matvec(x, w, out);
                }
                if group == k {
                    if let Some(fx) = input.fixed() {
                        let (c, sc) = (codes.as_ptr(), scales.as_ptr());
                        strided::<RQ>(n, out, |rows, out| q8_fixed_rows(fx, k, c, sc, rows, out), |row, out| q8_fixed_rows(fx, k, c, sc, row, out));
                        return;
                    }
                }
                let xt = transpose16(&x[..k]);
                let xp = xt.as_ptr();
                let (c, sc) = (codes.as_ptr(), scales.as_ptr());
                strided::<R8>(n, out, |rows, out| q8_rows(xp, k, group, c, sc, rows, out), |row, out| q8_rows(xp, k, group, c, sc, row, out));
            }
            QWeight::Q4 { group, packed, scales, zeros, .. } => {
                let group = *group;
                let xs = super::group_sums(&x[..k], group);
                let (p, s, z) = (packed.as_ptr(), scales.as_ptr(), zeros.as_ptr());
                if group % 64 == 0 && group <= super::fixed::Q4_GROUP_MAX {
                    if let Some(fx) = input.fixed() {
                        #[cfg(target_feature = "relaxed-simd")]
                        if fx.digits.len() == 4 * k {
                            use super::relaxed::q4_fixed_rows as q4_digits;
                            strided::<RQD>(n, out, |rows, out| q4_digits(fx, k, group, p, s, z, &xs, rows, out), |row, out| q4_digits(fx, k, group, p, s, z, &xs, row, out));
                            return;
                        }
                        strided::<RQ4>(n, out, |rows, out| q4_fixed_rows(fx, k, group, p, s, z, &xs, rows, out), |row, out| q4_fixed_rows(fx, k, group, p, s, z, &xs, row, out));
                        return;
                    }
                }
                let mut xt = transpose16(&x[..k]);
                // the codes are masked in place (no shift back down): a nibble in byte s of a lane
                // is q · 2^(8s), against x · 2^(-8s) (powers of two: exact for every activation
                // above 2^-102), so every product is the f32 product q · x
                for c in xt.chunks_exact_mut(16) {
                    for (s, v) in c.iter_mut().enumerate() {
                        *v *= [1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16_777_216.0][s / 4];
                    }
                }
                let xp = xt.as_ptr();
                let one = |row, out: &mut [f32]| q4_rows(xp, k, group, p, s, z, &xs, row, out);
                if group == 32 {
                    // groups of 32 keep two accumulators per row: 2 rows per pass fit the registers
                    strided::<2>(n, out, |rows, out| q4_rows(xp, k, group, p, s, z, &xs, rows, out), one);
                } else {
                    strided::<R>(n, out, |rows, out| q4_rows(xp, k, group, p, s, z, &xs, rows, out), one);
                }
            }
        }
    }
}

/// Weight rows per pass of the q4 and bf16 kernels: each activation load serves `R` rows, and
/// `R` row streams are in flight at once (rows `n / R` apart: [`strided`]).
const R: usize = 4;

/// Weight rows per pass of the q8 kernel. 8, not 4, although 8 accumulators, 8 loaded vectors
/// and the 4 activations are more than x86-64's 16 vector registers: in the wasm micro-benchmark
/// (`bench/wasm-kernels`) both run at the same speed on a matrix that stays in cache, but on
/// matrices streamed from memory, as every decode step streams them, 8 rows per pass took
/// 30-40% less time than 4 (32128 × 512: about 2.7 against 4.0 ms; 8192 × 2048: 2.6 against
/// 3.0 ms; 2, 6 and 16 rows also beat 4 there, 8 was the best overall), measured with adjacent
/// rows, before [`strided`].
const R8: usize = 8;

/// Weight rows per pass of the integer q8 kernel ([`q8_fixed_rows`]). In `bench/wasm-kernels`
/// (Node 20), with adjacent rows a pass: on a Sapphire Rapids host 2, 4, 6 and 8 rows were within
/// noise of each other, 8 the fastest on the 32128 × 512 LM head streamed from memory (2.14 ms
/// against 2.2-2.5); on an AMD EPYC (Zen 4) host a decode step streamed from memory took 3.2 ms
/// with one row a pass against 6.3-8.5 ms with 2, 4, 8 or 16 adjacent rows, the cause that
/// [`strided`] removes. With rows `n / 4` apart, 4 rows a pass took 3.5 ms there against 3.9-4.2
/// for 1 and 8 (a busier host then), and 11.4 against 9.8-10.6 G weights/s on a matrix in cache.
const RQ: usize = 4;

/// Weight rows per pass of the integer q4 kernel ([`q4_fixed_rows`]): here the limb vectors loaded
/// once per pass and shared by the rows count (one row per pass: 8.4 against 11.6 G weights/s on a
/// matrix in cache). With [`strided`] rows, 2 and 4 were within noise on the AMD host; on the
/// Sapphire Rapids host 4 streamed a decode step in 3.86 ms against 5.07 with 2 (Node 20, best of
/// 9, interleaved; 8: the same as 4), in cache 10.8 against 10.4 G weights/s.
const RQ4: usize = 4;

/// Weight rows per pass of the relaxed-SIMD q4 kernel.
#[cfg(target_feature = "relaxed-simd")]
const RQD: usize = 4;

/// `x` with every aligned block of 16 transposed as a 4 × 4 matrix: `xt[16c + 4s + j] =
/// x[16c + 4j + s]`. The kernels below take the codes apart with 32-bit lane shifts (no shuffle
/// constants, which V8 would rebuild on every use inside the loop): shifting 16 loaded bytes by
/// `8s` puts bytes `s, 4 + s, 8 + s, 12 + s` in the lanes, whose activations are `xt[4s..4s+4]`.
fn transpose16(x: &[f32]) -> Vec<f32> {
    let mut xt = vec![0.0f32; x.len() / 16 * 16];
    for (o, c) in xt.chunks_exact_mut(16).zip(x.chunks_exact(16)) {
        for s in 0..4 {
            for j in 0..4 {
                o[4 * s + j] = c[4 * j + s];
            }
        }
    }
    xt
}

/// `x` with every aligned block of 8 split into its even and its odd elements:
/// `xt[8c + i] = x[8c + 2i]`, `xt[8c + 4 + i] = x[8c + 2i + 1]` (`i < 4`).
fn deinterleave8(x: &[f32]) -> Vec<f32> {
    let mut xt = vec![0.0f32; x.len() / 8 * 8];
    for (o, c) in xt.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
        for i in 0..4 {
            o[i] = c[2 * i];
            o[4 + i] = c[2 * i + 1];
        }
    }
    xt
}

/// bf16, `R` rows from `data` (row stride `k`). 16 loaded bytes are 8 weights, two per 32-bit
/// lane: the even one becomes its f32 by a shift left by 16, the odd one by masking off the low
/// half (both exact), against `xt` ([`deinterleave8`]); the last `k % 8` weights one at a time.
#[inline(always)]
unsafe fn bf16_rows<const R: usize>(x: *const f32, xt: *const f32, k: usize, data: *const u16, rows: [usize; R], out: &mut [f32]) {
    let data = rows.map(|j| data.add(j * k));
    let hi = u32x4_splat(0xffff_0000);
    let k8 = k / 8 * 8;
    let mut acc = [f32x4_splat(0.0); R];
    let mut t = 0;
    while t < k8 {
        let xe = v128_load(xt.add(t) as *const v128);
        let xo = v128_load(xt.add(t + 4) as *const v128);
        for r in 0..R {
            let v = v128_load(data[r].add(t) as *const v128);
            acc[r] = madd(v128_and(v, hi), xo, madd(i32x4_shl(v, 16), xe, acc[r]));
        }
        t += 8;
    }
    for r in 0..R {
        let mut s = hsum(acc[r]);
        for t in k8..k {
            s += *x.add(t) * f32::from_bits((*data[r].add(t) as u32) << 16);
        }
        out[rows[r]] = s;
    }
}

/// q8, `R` rows from `codes` (row stride `k`, `k % 16 == 0`), one scale per `group` weights
/// (`group == k`: per row; 32: GGUF Q8_0 blocks), against `xt` ([`transpose16`]). Byte `s` of
/// each lane is shifted into the top byte and the rest masked off (`q · 2^24`), converted exactly.
#[inline(always)]
unsafe fn q8_rows<const R: usize>(xt: *const f32, k: usize, group: usize, codes: *const i8, scales: *const f32, rows: [usize; R], out: &mut [f32]) {
    let bpr = k / group;
    let (codes, scales) = (rows.map(|j| codes.add(j * k)), rows.map(|j| scales.add(j * bpr)));
    let top = u32x4_splat(0xff00_0000);
    // the lanes hold q · 2^24 (exact), so every product and partial sum is exactly 2^24 times
    // that of q · x; multiplying by 2^-24 (exact) before the scale takes it back out
    let unit = f32x4_splat(1.0 / 16_777_216.0);
    let mut tot = [f32x4_splat(0.0); R];
    for b in 0..bpr {
        let mut acc = [f32x4_splat(0.0); R];
        let mut t = b * group;
        while t < (b + 1) * group {
            let mut v = [f32x4_splat(0.0); R];
            for r in 0..R {
                v[r] = v128_load(codes[r].add(t) as *const v128);
            }
            let x0 = v128_load(xt.add(t) as *const v128);
            let x1 = v128_load(xt.add(t + 4) as *const v128);
            let x2 = v128_load(xt.add(t + 8) as *const v128);
            let x3 = v128_load(xt.add(t + 12) as *const v128);
            for r in 0..R {
                // byte s moved to the top byte, the rest masked off: q · 2^24 as an i32
                let w0 = f32x4_convert_i32x4(i32x4_shl(v[r], 24));
                let w1 = f32x4_convert_i32x4(v128_and(i32x4_shl(v[r], 16), top));
                let w2 = f32x4_convert_i32x4(v128_and(i32x4_shl(v[r], 8), top));
                let w3 = f32x4_convert_i32x4(v128_and(v[r], top));
                acc[r] = madd(w3, x3, madd(w2, x2, madd(w1, x1, madd(w0, x0, acc[r]))));
            }
            t += 16;
        }
        if bpr == 1 {
            // one scale per row: Σ q x summed, then scaled once (as the scalar path does)
            for r in 0..R {
                out[rows[r]] = hsum(acc[r]) * (1.0 / 16_777_216.0) * *scales[r];
            }
            return;
        }
        for r in 0..R {
            tot[r] = madd(f32x4_mul(acc[r], unit), f32x4_splat(*scales[r].add(b)), tot[r]);
        }
    }
    for r in 0..R {
        out[rows[r]] = hsum(tot[r]);
    }
}

/// q8 with one scale per row, `R` rows from `codes` (row stride `k`, `k % 16 == 0`), as exact
/// integer sums against the fixed-point `fx` ([`super::fixed`]: numerics there). Per 16 weights of
/// a row: the codes sign-extended to i16 (two 8-byte extending loads), and four `i32x4.dot_i16x8_s`
/// (pairs of i16 products summed into i32 lanes) against the two limbs of `X`, the limb vectors
/// loaded once per pass and shared by the `R` rows. The i32 lanes are flushed into i64 every
/// [`super::fixed::FLUSH`] weights (the overflow bound is there).
#[inline(always)]
unsafe fn q8_fixed_rows<const R: usize>(fx: &super::fixed::FixedX, k: usize, codes: *const i8, scales: *const f32, rows: [usize; R], out: &mut [f32]) {
    let codes = rows.map(|j| codes.add(j * k));
    use super::fixed::{FLUSH, LIMB};
    let (hp, lp) = (fx.hi.as_ptr(), fx.lo.as_ptr());
    let mut s = [0i64; R];
    let mut c0 = 0;
    while c0 < k {
        let c1 = (c0 + FLUSH).min(k);
        let (mut ah, mut al) = ([i32x4_splat(0); R], [i32x4_splat(0); R]);
        let mut t = c0;
        while t < c1 {
            let h0 = v128_load(hp.add(t) as *const v128);
            let h1 = v128_load(hp.add(t + 8) as *const v128);
            let l0 = v128_load(lp.add(t) as *const v128);
            let l1 = v128_load(lp.add(t + 8) as *const v128);
            for r in 0..R {
                let p = codes[r].add(t);
                let qa = i16x8_load_extend_i8x8(p);
                let qb = i16x8_load_extend_i8x8(p.add(8));
                ah[r] = i32x4_add(i32x4_add(ah[r], i32x4_dot_i16x8(qa, h0)), i32x4_dot_i16x8(qb, h1));
                al[r] = i32x4_add(i32x4_add(al[r], i32x4_dot_i16x8(qa, l0)), i32x4_dot_i16x8(qb, l1));
            }
            t += 16;
        }
        for r in 0..R {
            s[r] += (lanes_i64(ah[r]) << LIMB) + lanes_i64(al[r]);
        }
        c0 = c1;
    }
    for r in 0..R {
        out[rows[r]] = fx.out(s[r], *scales.add(rows[r]));
    }
}

/// The sum of the four i32 lanes, in i64 (a flushed accumulator's lanes reach 2^30 each).
#[inline(always)]
fn lanes_i64(v: v128) -> i64 {
    i32x4_extract_lane::<0>(v) as i64 + i32x4_extract_lane::<1>(v) as i64 + i32x4_extract_lane::<2>(v) as i64 + i32x4_extract_lane::<3>(v) as i64
}

/// q4 with groups of a multiple of 64 up to [`super::fixed::Q4_GROUP_MAX`], `R` rows from `packed`
/// (row stride `k / 2`), as exact integer sums against the fixed-point `fx` ([`super::fixed`];
/// numerics and the portable reference: [`super::fixed::q4_dot`]). Byte `o` of a 64-weight chunk
/// holds the low nibble of weight `o` and the high one of weight `32 + o`: 8 bytes zero-extended to
/// u16 in one load (`v128.load8x8_u`), masked and shifted down, give two i16x8 vectors of codes in
/// the order of `x`, each against both limbs with `i32x4.dot_i16x8_s` (the four limb vectors of
/// those 8 bytes loaded once, shared by the `R` rows: few enough live values that V8 keeps them in
/// registers). Per group, each row's i32 lanes (below 2^24: exact in
/// f32) are converted, combined as `2^14 hi + lo` and scaled into f32 accumulators; the zero
/// points through `xs` (group sums of x) as in [`q4_rows`].
#[inline(always)]
unsafe fn q4_fixed_rows<const R: usize>(
    fx: &super::fixed::FixedX,
    k: usize,
    group: usize,
    packed: *const u8,
    scales: *const f32,
    zeros: *const f32,
    xs: &[f32],
    rows: [usize; R],
    out: &mut [f32],
) {
    let (hp, lp) = (fx.hi.as_ptr(), fx.lo.as_ptr());
    let gpr = k / group;
    let (packed, scales, zeros) = (rows.map(|j| packed.add(j * k / 2)), rows.map(|j| scales.add(j * gpr)), rows.map(|j| zeros.add(j * gpr)));
    let nib = i16x8_splat(0x0f);
    let mut tot = [f32x4_splat(0.0); R];
    let mut zs = [0.0f32; R];
    for g in 0..gpr {
        let (mut ah, mut al) = ([i32x4_splat(0); R], [i32x4_splat(0); R]);
        // 8 bytes at a time (bytes o..o+8: the low nibbles of weights t..t+8, the high ones of
        // t+32..t+40), a loop whose trip count LLVM does not know, so that it does not unroll it
        // and load every limb vector of a chunk up front (more than x86-64's registers)
        for i in g * group / 16..(g + 1) * group / 16 {
            // byte o of the group's rows; weight t = 64 (i / 4) + 8 (i % 4) of x
            let (o, t) = (i * 8, i * 8 + i / 4 * 32);
            let (h0, h1) = (v128_load(hp.add(t) as *const v128), v128_load(hp.add(t + 32) as *const v128));
            let (l0, l1) = (v128_load(lp.add(t) as *const v128), v128_load(lp.add(t + 32) as *const v128));
            for r in 0..R {
                let e = u16x8_load_extend_u8x8(packed[r].add(o));
                let (qa, qb) = (v128_and(e, nib), u16x8_shr(e, 4));
                ah[r] = i32x4_add(i32x4_add(ah[r], i32x4_dot_i16x8(qa, h0)), i32x4_dot_i16x8(qb, h1));
                al[r] = i32x4_add(i32x4_add(al[r], i32x4_dot_i16x8(qa, l0)), i32x4_dot_i16x8(qb, l1));
            }
        }
        for r in 0..R {
            q4_group_end(ah[r], al[r], *scales[r].add(g), *zeros[r].add(g), xs[g], &mut tot[r], &mut zs[r]);
        }
    }
    for r in 0..R {
        out[rows[r]] = (hsum(tot[r]) as f64 * fx.unit) as f32 + zs[r];
    }
}

/// The end of one group of an integer q4 kernel, for one row: its exact i32 lane sums of the `hi` and `lo` limbs
/// (each below 2^24) converted, combined as `2^14 hi + lo` (`2^14 hi` is exact, so the sum is rounded once, with or
/// without fused madd) and scaled into the row's f32 accumulators `tot`; the zero-point term `(zero - 8 scale) Σx`
/// into `zs` (`xsum`: the group's sum of x).
#[inline(always)]
pub(super) fn q4_group_end(hi: v128, lo: v128, scale: f32, zero: f32, xsum: f32, tot: &mut v128, zs: &mut f32) {
    let limb = f32x4_splat((1u32 << super::fixed::LIMB) as f32);
    let v = madd(f32x4_convert_i32x4(hi), limb, f32x4_convert_i32x4(lo));
    *tot = madd(v, f32x4_splat(scale), *tot);
    *zs += (zero - 8.0 * scale) * xsum;
}

/// q4, `R` rows from `packed` (row stride `k / 2`), groups of `group` (a multiple of 64, or 32:
/// low nibbles of each 64-weight chunk one group, high nibbles the next), against `xt`
/// ([`transpose16`], row `s` of every 4 × 4 block times 2^(-8s)). 16 loaded bytes hold the low
/// nibbles of weights `t..t+16` and the high ones of `t+32..t+48`; the low nibble of byte `s` of
/// each lane is masked in place (`q · 2^(8s)`), the high ones the same after one shift by 4.
/// `Σ q x` per group as before, scaled once; the zero points through `xs` (group sums of x).
#[inline(always)]
unsafe fn q4_rows<const R: usize>(
    xt: *const f32,
    k: usize,
    group: usize,
    packed: *const u8,
    scales: *const f32,
    zeros: *const f32,
    xs: &[f32],
    rows: [usize; R],
    out: &mut [f32],
) {
    let gpr = k / group;
    let (packed, scales, zeros) = (rows.map(|j| packed.add(j * k / 2)), rows.map(|j| scales.add(j * gpr)), rows.map(|j| zeros.add(j * gpr)));
    let split = group == 32;
    let (m0, m1, m2, m3) = (u32x4_splat(0x0f), u32x4_splat(0x0f00), u32x4_splat(0x0f_0000), u32x4_splat(0x0f00_0000));
    let mut tot = [f32x4_splat(0.0); R];
    let mut zs = [0.0f32; R];
    let chunks = if split { 1 } else { group / 64 };
    for g in (0..gpr).step_by(if split { 2 } else { 1 }) {
        let (mut al, mut ah) = ([f32x4_splat(0.0); R], [f32x4_splat(0.0); R]);
        let c0 = if split { g / 2 } else { g * chunks };
        for c in c0..c0 + chunks {
            for h in 0..2 {
                let off = c * 32 + h * 16;
                let xl = xt.add(c * 64 + h * 16);
                let xh = xl.add(32);
                let mut v = [f32x4_splat(0.0); R];
                for r in 0..R {
                    v[r] = v128_load(packed[r].add(off) as *const v128);
                }
                let (l0, l1, l2, l3) = (v128_load(xl as *const v128), v128_load(xl.add(4) as *const v128), v128_load(xl.add(8) as *const v128), v128_load(xl.add(12) as *const v128));
                for r in 0..R {
                    let q0 = f32x4_convert_i32x4(v128_and(v[r], m0));
                    let q1 = f32x4_convert_i32x4(v128_and(v[r], m1));
                    let q2 = f32x4_convert_i32x4(v128_and(v[r], m2));
                    let q3 = f32x4_convert_i32x4(v128_and(v[r], m3));
                    al[r] = madd(q3, l3, madd(q2, l2, madd(q1, l1, madd(q0, l0, al[r]))));
                }
                let (h0, h1, h2, h3) = (v128_load(xh as *const v128), v128_load(xh.add(4) as *const v128), v128_load(xh.add(8) as *const v128), v128_load(xh.add(12) as *const v128));
                for r in 0..R {
                    // 16 · q: masked where it lies (the shifted copies are shared with the low nibbles)
                    let u = u32x4_shr(v[r], 4);
                    let q0 = f32x4_convert_i32x4(v128_and(u, m0));
                    let q1 = f32x4_convert_i32x4(v128_and(u, m1));
                    let q2 = f32x4_convert_i32x4(v128_and(u, m2));
                    let q3 = f32x4_convert_i32x4(v128_and(u, m3));
                    // groups of 64+: both halves in one accumulator per row (fewer registers)
                    let a = if split { &mut ah[r] } else { &mut al[r] };
                    *a = madd(q3, h3, madd(q2, h2, madd(q1, h1, madd(q0, h0, *a))));
                }
            }
        }
        for r in 0..R {
            let (s0, z0) = (*scales[r].add(g), *zeros[r].add(g));
            if split {
                let (s1, z1) = (*scales[r].add(g + 1), *zeros[r].add(g + 1));
                tot[r] = madd(al[r], f32x4_splat(s0), tot[r]);
                tot[r] = madd(ah[r], f32x4_splat(s1), tot[r]);
                zs[r] += (z0 - 8.0 * s0) * xs[g] + (z1 - 8.0 * s1) * xs[g + 1];
            } else {
                tot[r] = madd(al[r], f32x4_splat(s0), tot[r]);
                zs[r] += (z0 - 8.0 * s0) * xs[g];
            }
        }
    }
    for r in 0..R {
        out[rows[r]] = hsum(tot[r]) + zs[r];
    }
}

/// `Σ x[t] · w(t)`, `load(t)` giving weights t..t+4 and t+4..t+8 as f32x4.
#[inline(always)]
unsafe fn dot8(xp: *const f32, k: usize, load: impl Fn(usize) -> (v128, v128), one: impl Fn(usize) -> f32) -> f32 {
    let k8 = k / 8 * 8;
    let (mut a0, mut a1) = (f32x4_splat(0.0), f32x4_splat(0.0));
    let mut t = 0;
    while t < k8 {
        let (w0, w1) = load(t);
        a0 = madd(w0, v128_load(xp.add(t) as *const v128), a0);
        a1 = madd(w1, v128_load(xp.add(t + 4) as *const v128), a1);
        t += 8;
    }
    let mut s = hsum(f32x4_add(a0, a1));
    for t in k8..k {
        s += *xp.add(t) * one(t);
    }
    s
}
