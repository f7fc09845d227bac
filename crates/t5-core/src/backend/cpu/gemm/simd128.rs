//! WASM SIMD128 f32 tiles (fused multiply-adds in the relaxed-SIMD build).

use core::arch::wasm32::*;

/// `a * b + c`: one fused multiply-add where the runtime has relaxed SIMD (the `+relaxed-simd`
/// build, picked at load where supported; the engines lower it to FMA on x86-64 with FMA3 and
/// on Arm), a multiply then an add in the baseline SIMD128 build.
#[inline(always)]
pub fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(c, f32x4_mul(a, b))
    }
}

/// Sum of the 4 lanes (shared with the quantized kernels).
#[inline(always)]
pub fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)
}

#[inline(always)]
fn tile<const MI: usize, const NJ: usize>(i0: usize, j0: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    let k4 = k / 4 * 4;
    let mut acc = [[f32x4_splat(0.0); NJ]; MI];
    let xp = x.as_ptr();
    let wp = w.as_ptr();
    let mut kk = 0;
    while kk < k4 {
        // SAFETY: rows i0..i0+MI of x and j0..j0+NJ of w exist (checked by the caller), kk + 4 <= k.
        unsafe {
            let mut wv = [f32x4_splat(0.0); NJ];
            for jj in 0..NJ {
                wv[jj] = v128_load(wp.add((j0 + jj) * k + kk) as *const v128);
            }
            for ii in 0..MI {
                let xv = v128_load(xp.add((i0 + ii) * k + kk) as *const v128);
                for jj in 0..NJ {
                    acc[ii][jj] = madd(xv, wv[jj], acc[ii][jj]);
                }
            }
        }
        kk += 4;
    }
    for ii in 0..MI {
        for jj in 0..NJ {
            let mut s = hsum(acc[ii][jj]);
            for t in k4..k {
                s += x[(i0 + ii) * k + t] * w[(j0 + jj) * k + t];
            }
            out[(i0 + ii) * n + j0 + jj] = s;
        }
    }
}

pub fn matmul_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    for_tiles!(m, n, tile, (n, k, x, w, out));
}
