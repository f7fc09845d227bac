// x @ w^T on software adapters (SwiftShader, lavapipe): each invocation computes 4 adjacent
// outputs of one row straight from memory, no workgroup memory and no barriers.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
//WEIGHTS
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.y;
  let c0 = (wid.x * 64u + lid.x) * 4u;
  if (r >= p.m || c0 >= p.nc) { return; }
  var acc = vec4<f32>(0.0);
  let xb = r * p.k;
  let c1 = min(c0 + 1u, p.nc - 1u);
  let c2 = min(c0 + 2u, p.nc - 1u);
  let c3 = min(c0 + 3u, p.nc - 1u);
  for (var kk = 0u; kk < p.k; kk++) {
    let xv = x[xb + kk];
    acc = fma(vec4<f32>(xv), vec4<f32>(wload(c0 * p.k + kk), wload(c1 * p.k + kk), wload(c2 * p.k + kk), wload(c3 * p.k + kk)), acc);
  }
  let o = r * p.n + p.n_off;
  store(o + c0, acc.x);
  if (c0 + 1u < p.nc) { store(o + c0 + 1u, acc.y); }
  if (c0 + 2u < p.nc) { store(o + c0 + 2u, acc.z); }
  if (c0 + 3u < p.nc) { store(o + c0 + 3u, acc.w); }
}
