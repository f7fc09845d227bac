// matvec.wgsl through shader-f16 (shaders/half.wgsl): few rows (m <= 8, decoding),
// out[r, n_off + j] = sum_k x[r, k] * w[j, k]; 256 threads = 4 output columns x 64 lanes, each lane
// steps over k four at a time (one vec4<f16> of the weight row, one vec4<f32> per input row).
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 256>;

// pick(lo, hi, r): row r of the per-row sums kept in two vec4 registers (shaders/rows.wgsl, prepended)

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let lane = lid.x % 64u;
  let c = lid.x / 64u;
  let col = (wid.y * nwg.x + wid.x) * 4u + c;
  let k4 = p.k / 4u;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  if (col < p.nc) {
    let wb = col * k4;
    for (var kk = lane; kk < k4; kk += 64u) {
      let wv = w[wb + kk];
      lo.x = fma4(x[kk], wv, lo.x);
      if (p.m > 1u) { lo.y = fma4(x[1u * k4 + kk], wv, lo.y); }
      if (p.m > 2u) { lo.z = fma4(x[2u * k4 + kk], wv, lo.z); }
      if (p.m > 3u) { lo.w = fma4(x[3u * k4 + kk], wv, lo.w); }
      if (p.m > 4u) { hi.x = fma4(x[4u * k4 + kk], wv, hi.x); }
      if (p.m > 5u) { hi.y = fma4(x[5u * k4 + kk], wv, hi.y); }
      if (p.m > 6u) { hi.z = fma4(x[6u * k4 + kk], wv, hi.z); }
      if (p.m > 7u) { hi.w = fma4(x[7u * k4 + kk], wv, hi.w); }
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
