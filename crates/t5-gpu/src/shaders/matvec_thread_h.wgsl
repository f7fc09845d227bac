// matvec_thread.wgsl through shader-f16 (shaders/half.wgsl): few rows (m <= 8) on software
// adapters, one invocation per output column, no barriers; k stepped four at a time.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = (wid.y * nwg.x + wid.x) * 64u + lid.x;
  if (col >= p.nc) { return; }
  let k4 = p.k / 4u;
  var acc: array<f32, 8>;
  for (var r = 0u; r < 8u; r++) { acc[r] = 0.0; }
  let wb = col * k4;
  for (var kk = 0u; kk < k4; kk++) {
    let wv = w[wb + kk];
    for (var r = 0u; r < p.m; r++) { acc[r] = fma4(x[r * k4 + kk], wv, acc[r]); }
  }
  for (var r = 0u; r < p.m; r++) { store(r * p.n + p.n_off + col, acc[r]); }
}
