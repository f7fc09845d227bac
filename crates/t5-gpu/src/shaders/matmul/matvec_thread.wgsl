// Few rows (m <= 8) on software adapters (SwiftShader, lavapipe): one invocation per output column, no
// workgroup barriers (barriers are what CPU emulation of a GPU pays most for); k stepped four at a time.
// xin / prologue as in matvec.wgsl (the prelude's NORM kinds: every invocation computes the rows' norm
// scales, the one of column 0 also writes norm(x) to h).
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = (wid.y * nwg.x + wid.x) * 64u + lid.x;
  if (col >= p.nc) { return; }
  prologue(lid.x, col == 0u);
  var acc: array<f32, 8>;
  for (var r = 0u; r < 8u; r++) { acc[r] = 0.0; }
  for (var kk = 0u; kk < p.k; kk += 4u) {
    let wv = w4(col, kk);
    for (var r = 0u; r < p.m; r++) { acc[r] = fma4(xin(r, kk), wv, acc[r]); }
  }
  for (var r = 0u; r < p.m; r++) { store(r * p.n + p.n_off + col, acc[r]); }
}
