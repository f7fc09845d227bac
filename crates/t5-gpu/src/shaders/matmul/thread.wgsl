// x @ w^T on software adapters (SwiftShader, lavapipe): each invocation computes 4 adjacent outputs of one
// row straight from memory (k stepped four at a time), no workgroup memory and no barriers.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.y;
  let c0 = (wid.x * 64u + lid.x) * 4u;
  if (r >= p.m || c0 >= p.nc) { return; }
  let c1 = min(c0 + 1u, p.nc - 1u);
  let c2 = min(c0 + 2u, p.nc - 1u);
  let c3 = min(c0 + 3u, p.nc - 1u);
  var acc = vec4<f32>(0.0);
  for (var kk = 0u; kk < p.k; kk += 4u) {
    let xv = x4(r, kk);
    acc = vec4<f32>(fma4(xv, w4(c0, kk), acc.x), fma4(xv, w4(c1, kk), acc.y), fma4(xv, w4(c2, kk), acc.z), fma4(xv, w4(c3, kk), acc.w));
  }
  let o = r * p.n + p.n_off;
  store(o + c0, acc.x);
  if (c0 + 1u < p.nc) { store(o + c0 + 1u, acc.y); }
  if (c0 + 2u < p.nc) { store(o + c0 + 2u, acc.z); }
  if (c0 + 3u < p.nc) { store(o + c0 + 3u, acc.w); }
}
