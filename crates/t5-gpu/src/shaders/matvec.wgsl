// Few rows (m <= 8, decoding): out[r, n_off + j] = sum_k x[r, k] * w[j, k].
// 256 threads = 4 output columns x 64 lanes over k; each lane keeps one partial sum per row.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
//WEIGHTS
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 256>;

// pick(lo, hi, r): row r of the per-row sums kept in two vec4 registers (shaders/rows.wgsl, prepended)

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let lane = lid.x % 64u;
  let c = lid.x / 64u;
  let col = (wid.y * nwg.x + wid.x) * 4u + c;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  if (col < p.nc) {
    let wb = col * p.k;
    for (var kk = lane; kk < p.k; kk += 64u) {
      let wv = wload(wb + kk);
      lo.x = fma(x[0u * p.k + kk], wv, lo.x);
      if (p.m > 1u) { lo.y = fma(x[1u * p.k + kk], wv, lo.y); }
      if (p.m > 2u) { lo.z = fma(x[2u * p.k + kk], wv, lo.z); }
      if (p.m > 3u) { lo.w = fma(x[3u * p.k + kk], wv, lo.w); }
      if (p.m > 4u) { hi.x = fma(x[4u * p.k + kk], wv, hi.x); }
      if (p.m > 5u) { hi.y = fma(x[5u * p.k + kk], wv, hi.y); }
      if (p.m > 6u) { hi.z = fma(x[6u * p.k + kk], wv, hi.z); }
      if (p.m > 7u) { hi.w = fma(x[7u * p.k + kk], wv, hi.w); }
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
