// matvec with the T5 layer norm of its input fused in (decode steps): out = norm(x) @ w^T where
// norm(x) = nw * x * rsqrt(mean(x^2) + eps) (float16 form with p.half). Each workgroup reduces the
// rows' sums of squares first; workgroup 0 also writes norm(x) to h for the other matmuls that read it.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, eps: f32, half: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
//WEIGHTS
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> nw: array<f32>;
@group(0) @binding(5) var<storage, read_write> h: array<f32>;

var<workgroup> red: array<f32, 256>;
var<workgroup> inv: array<f32, 8>;

fn normed(v: f32, g: f32, iv: f32) -> f32 {
  if (p.half != 0u) { return round16(g * round16(v * iv)); }
  return g * (v * iv);
}

// pick(lo, hi, r): row r of the per-row sums kept in two vec4 registers (shaders/rows.wgsl, prepended)

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  for (var r = 0u; r < p.m; r++) {
    var s = 0.0;
    for (var kk = lid.x; kk < p.k; kk += 256u) { let v = x[r * p.k + kk]; s = fma(v, v, s); }
    red[lid.x] = s;
    workgroupBarrier();
    for (var st = 128u; st > 0u; st >>= 1u) {
      if (lid.x < st) { red[lid.x] += red[lid.x + st]; }
      workgroupBarrier();
    }
    if (lid.x == 0u) { inv[r] = 1.0 / sqrt(red[0] / f32(p.k) + p.eps); }
    workgroupBarrier();
  }
  let first = wid.x == 0u && wid.y == 0u;
  if (first) {
    for (var r = 0u; r < p.m; r++) {
      for (var kk = lid.x; kk < p.k; kk += 256u) { h[r * p.k + kk] = normed(x[r * p.k + kk], nw[kk], inv[r]); }
    }
  }
  let lane = lid.x % 64u;
  let c = lid.x / 64u;
  let col = (wid.y * nwg.x + wid.x) * 4u + c;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  if (col < p.nc) {
    let wb = col * p.k;
    for (var kk = lane; kk < p.k; kk += 64u) {
      let wv = wload(wb + kk);
      let g = nw[kk];
      lo.x = fma(normed(x[0u * p.k + kk], g, inv[0u]), wv, lo.x);
      if (p.m > 1u) { lo.y = fma(normed(x[1u * p.k + kk], g, inv[1u]), wv, lo.y); }
      if (p.m > 2u) { lo.z = fma(normed(x[2u * p.k + kk], g, inv[2u]), wv, lo.z); }
      if (p.m > 3u) { lo.w = fma(normed(x[3u * p.k + kk], g, inv[3u]), wv, lo.w); }
      if (p.m > 4u) { hi.x = fma(normed(x[4u * p.k + kk], g, inv[4u]), wv, hi.x); }
      if (p.m > 5u) { hi.y = fma(normed(x[5u * p.k + kk], g, inv[5u]), wv, hi.y); }
      if (p.m > 6u) { hi.z = fma(normed(x[6u * p.k + kk], g, inv[6u]), wv, hi.z); }
      if (p.m > 7u) { hi.w = fma(normed(x[7u * p.k + kk], g, inv[7u]), wv, hi.w); }
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
