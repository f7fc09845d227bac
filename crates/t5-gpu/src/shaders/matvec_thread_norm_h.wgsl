// matvec_thread_norm.wgsl through shader-f16 (shaders/half.wgsl): out = norm(x) @ w^T on decode
// steps on software adapters; the norm in f32 as there, the products four k at a time; the invocation
// of column 0 also writes norm(x) to h for the other matmuls that read it.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, eps: f32, half: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> nw: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> h: array<vec4<f32>>;

fn normed(v: f32, g: f32, inv: f32) -> f32 {
  if (p.half != 0u) { return round16(g * round16(v * inv)); }
  return g * (v * inv);
}
fn normed4(v: vec4<f32>, g: vec4<f32>, iv: f32) -> vec4<f32> {
  return vec4<f32>(normed(v.x, g.x, iv), normed(v.y, g.y, iv), normed(v.z, g.z, iv), normed(v.w, g.w, iv));
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = (wid.y * nwg.x + wid.x) * 64u + lid.x;
  if (col >= p.nc) { return; }
  let k4 = p.k / 4u;
  var inv: array<f32, 8>;
  for (var r = 0u; r < p.m; r++) {
    var s = 0.0;
    for (var kk = 0u; kk < k4; kk++) {
      let v = x[r * k4 + kk];
      s = fma(v.x, v.x, s);
      s = fma(v.y, v.y, s);
      s = fma(v.z, v.z, s);
      s = fma(v.w, v.w, s);
    }
    inv[r] = 1.0 / sqrt(s / f32(p.k) + p.eps);
  }
  var acc: array<f32, 8>;
  for (var r = 0u; r < 8u; r++) { acc[r] = 0.0; }
  let wb = col * k4;
  for (var kk = 0u; kk < k4; kk++) {
    let wv = w[wb + kk];
    let g = nw[kk];
    for (var r = 0u; r < p.m; r++) { acc[r] = fma4(normed4(x[r * k4 + kk], g, inv[r]), wv, acc[r]); }
  }
  if (col == 0u) {
    for (var r = 0u; r < p.m; r++) {
      for (var kk = 0u; kk < k4; kk++) { h[r * k4 + kk] = normed4(x[r * k4 + kk], nw[kk], inv[r]); }
    }
  }
  for (var r = 0u; r < p.m; r++) { store(r * p.n + p.n_off + col, acc[r]); }
}
