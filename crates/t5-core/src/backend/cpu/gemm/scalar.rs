//! Portable f32 `matmul_nt`: the reference of the SIMD kernels.

pub fn matmul_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    for i in 0..m {
        matvec(n, k, &x[i * k..(i + 1) * k], w, k, &mut out[i * n..(i + 1) * n]);
    }
}

/// `out[j] = x · w[j * ldw .. j * ldw + k]`: 8 partial sums along `k`, added in order, then the tail.
pub fn matvec(n: usize, k: usize, x: &[f32], w: &[f32], ldw: usize, out: &mut [f32]) {
    let xr = &x[..k];
    for j in 0..n {
        let wr = &w[j * ldw..j * ldw + k];
        let mut acc = [0.0f32; 8];
        let chunks = k / 8;
        for c in 0..chunks {
            for l in 0..8 {
                acc[l] += xr[c * 8 + l] * wr[c * 8 + l];
            }
        }
        let mut s: f32 = acc.iter().sum();
        for kk in chunks * 8..k {
            s += xr[kk] * wr[kk];
        }
        out[j] = s;
    }
}

/// The portable packed-panel micro-kernel ([`super::packed`]): 4 rows × 4 columns, a multiply then
/// an add per step of `t` (the reference order of every ISA's kernel).
pub(crate) const ISA: super::packed::Isa = super::packed::Isa { name: "scalar", mr: 4, nr: 4, tile: packed_tile };

unsafe fn packed_tile(mr: usize, k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    let mut acc = [[0.0f32; 4]; 4];
    for t in 0..k {
        let b = core::slice::from_raw_parts(panel.add(t * 4), 4);
        for (i, a) in acc.iter_mut().enumerate().take(mr) {
            let xv = *x.add(i * ldx + t);
            for c in 0..4 {
                a[c] += xv * b[c];
            }
        }
    }
    super::packed::store(&acc[..], mr, out, ldo, nr);
}
