// Few rows (m <= 8, decoding): out[r, n_off + j] = sum_k xin(r, k) * w[j, k]. 256 threads = 4 output
// columns x 64 lanes; each lane steps over k four at a time (one vec4 of the weight row, one of each input
// row) and keeps one partial sum per row in two vec4 registers (`pick` reads row r back through `select`:
// no private array indexed at run time). xin is the input, or with the layer norm fused in (the prelude's
// NORM kinds) norm(x), whose per-row scale `prologue` computes first (workgroup 0 also writes norm(x) to h
// for the other matmuls that read it).
var<workgroup> red: array<f32, 256>;

fn pick(lo: vec4<f32>, hi: vec4<f32>, r: u32) -> f32 {
  let v = select(lo, hi, r >= 4u);
  let i = r & 3u;
  return select(select(select(v.x, v.y, i == 1u), v.z, i == 2u), v.w, i == 3u);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  prologue(lid.x, wid.x == 0u && wid.y == 0u);
  let lane = lid.x % 64u;
  let c = lid.x / 64u;
  let col = (wid.y * nwg.x + wid.x) * 4u + c;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  if (col < p.nc) {
    for (var kk = lane * 4u; kk < p.k; kk += 256u) {
      let wv = w4(col, kk);
      lo.x = fma4(xin(0u, kk), wv, lo.x);
      if (p.m > 1u) { lo.y = fma4(xin(1u, kk), wv, lo.y); }
      if (p.m > 2u) { lo.z = fma4(xin(2u, kk), wv, lo.z); }
      if (p.m > 3u) { lo.w = fma4(xin(3u, kk), wv, lo.w); }
      if (p.m > 4u) { hi.x = fma4(xin(4u, kk), wv, hi.x); }
      if (p.m > 5u) { hi.y = fma4(xin(5u, kk), wv, hi.y); }
      if (p.m > 6u) { hi.z = fma4(xin(6u, kk), wv, hi.z); }
      if (p.m > 7u) { hi.w = fma4(xin(7u, kk), wv, hi.w); }
    }
  }
  for (var r = 0u; r < p.m; r++) {
    red[lid.x] = pick(lo, hi, r);
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
      if (lane < s) { red[lid.x] += red[lid.x + s]; }
      workgroupBarrier();
    }
    if (lane == 0u && col < p.nc) { store(r * p.n + p.n_off + col, red[lid.x]); }
    workgroupBarrier();
  }
}
