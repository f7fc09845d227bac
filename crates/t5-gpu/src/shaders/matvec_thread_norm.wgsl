// matvec_thread with the T5 layer norm of its input fused in (decode steps on software adapters):
// out = norm(x) @ w^T where norm(x) = nw * x * rsqrt(mean(x^2) + eps) (float16 form with p.half);
// the invocation of column 0 also writes norm(x) to h for the other matmuls that read it.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, eps: f32, half: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
//WEIGHTS
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> nw: array<f32>;
@group(0) @binding(5) var<storage, read_write> h: array<f32>;

fn normed(v: f32, g: f32, inv: f32) -> f32 {
  if (p.half != 0u) { return round16(g * round16(v * inv)); }
  return g * (v * inv);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = (wid.y * nwg.x + wid.x) * 64u + lid.x;
  if (col >= p.nc) { return; }
  var inv: array<f32, 8>;
  for (var r = 0u; r < p.m; r++) {
    var s = 0.0;
    for (var kk = 0u; kk < p.k; kk++) { let v = x[r * p.k + kk]; s = fma(v, v, s); }
    inv[r] = 1.0 / sqrt(s / f32(p.k) + p.eps);
  }
  var acc: array<f32, 8>;
  for (var r = 0u; r < 8u; r++) { acc[r] = 0.0; }
  let wb = col * p.k;
  for (var kk = 0u; kk < p.k; kk++) {
    let wv = wload(wb + kk);
    let g = nw[kk];
    for (var r = 0u; r < p.m; r++) { acc[r] = fma(normed(x[r * p.k + kk], g, inv[r]), wv, acc[r]); }
  }
  if (col == 0u) {
    for (var r = 0u; r < p.m; r++) {
      for (var kk = 0u; kk < p.k; kk++) { h[r * p.k + kk] = normed(x[r * p.k + kk], nw[kk], inv[r]); }
    }
  }
  for (var r = 0u; r < p.m; r++) { store(r * p.n + p.n_off + col, acc[r]); }
}
