//! AVX-512F packed-panel micro-kernel ([`super::packed`]), runtime-detected: 12 rows × 32 columns
//! (two 16-lane vectors), 24 of the 32 vector registers as accumulators, one fused multiply-add per
//! accumulator and step of `t` (the broadcast of `x` folds into it).

use core::arch::x86_64::*;

pub(crate) const ISA: super::packed::Isa = super::packed::Isa { name: "avx512", mr: 12, nr: 32, tile: packed_tile };

unsafe fn packed_tile(mr: usize, k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    match mr {
        1 => micro::<1>(k, x, ldx, panel, out, ldo, nr),
        2 => micro::<2>(k, x, ldx, panel, out, ldo, nr),
        3 => micro::<3>(k, x, ldx, panel, out, ldo, nr),
        4 => micro::<4>(k, x, ldx, panel, out, ldo, nr),
        5 => micro::<5>(k, x, ldx, panel, out, ldo, nr),
        6 => micro::<6>(k, x, ldx, panel, out, ldo, nr),
        7 => micro::<7>(k, x, ldx, panel, out, ldo, nr),
        8 => micro::<8>(k, x, ldx, panel, out, ldo, nr),
        9 => micro::<9>(k, x, ldx, panel, out, ldo, nr),
        10 => micro::<10>(k, x, ldx, panel, out, ldo, nr),
        11 => micro::<11>(k, x, ldx, panel, out, ldo, nr),
        _ => micro::<12>(k, x, ldx, panel, out, ldo, nr),
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn micro<const MR: usize>(k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let mut p = panel;
    for t in 0..k {
        let (b0, b1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        for (i, a) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_ps(*x.add(i * ldx + t));
            a[0] = _mm512_fmadd_ps(xv, b0, a[0]);
            a[1] = _mm512_fmadd_ps(xv, b1, a[1]);
        }
        p = p.add(32);
    }
    if nr == 32 {
        for (i, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(i * ldo), a[0]);
            _mm512_storeu_ps(out.add(i * ldo + 16), a[1]);
        }
    } else {
        let mut tmp = [[0.0f32; 32]; MR];
        for (a, t) in acc.iter().zip(tmp.iter_mut()) {
            _mm512_storeu_ps(t.as_mut_ptr(), a[0]);
            _mm512_storeu_ps(t.as_mut_ptr().add(16), a[1]);
        }
        super::packed::store(&tmp[..], MR, out, ldo, nr);
    }
}
