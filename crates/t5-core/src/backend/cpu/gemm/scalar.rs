//! Portable f32 `matmul_nt`: the reference of the SIMD kernels.

pub fn matmul_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
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
            out[i * n + j] = s;
        }
    }
}
