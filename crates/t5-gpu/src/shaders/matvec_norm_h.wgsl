// matvec_norm.wgsl through shader-f16 (shaders/half.wgsl): out = norm(x) @ w^T on decode steps,
// norm(x) = nw * x * rsqrt(mean(x^2) + eps) (float16 form with p.half), computed in f32 as in
// matvec_norm.wgsl (same sums of squares), then multiplied by the weights four k at a time.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, eps: f32, half: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> nw: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> h: array<f32>;

var<workgroup> red: array<f32, 256>;
var<workgroup> inv: array<f32, 8>;

fn xs(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn normed(v: f32, g: f32, iv: f32) -> f32 {
  if (p.half != 0u) { return round16(g * round16(v * iv)); }
  return g * (v * iv);
}
fn normed4(v: vec4<f32>, g: vec4<f32>, iv: f32) -> vec4<f32> {
  return vec4<f32>(normed(v.x, g.x, iv), normed(v.y, g.y, iv), normed(v.z, g.z, iv), normed(v.w, g.w, iv));
}

// pick(lo, hi, r): row r of the per-row sums kept in two vec4 registers (shaders/rows.wgsl, prepended)

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  for (var r = 0u; r < p.m; r++) {
    var s = 0.0;
    for (var kk = lid.x; kk < p.k; kk += 256u) { let v = xs(r * p.k + kk); s = fma(v, v, s); }
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
      for (var kk = lid.x; kk < p.k; kk += 256u) { h[r * p.k + kk] = normed(xs(r * p.k + kk), nw[kk >> 2u][kk & 3u], inv[r]); }
    }
  }
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
      let g = nw[kk];
      lo.x = fma4(normed4(x[kk], g, inv[0u]), wv, lo.x);
      if (p.m > 1u) { lo.y = fma4(normed4(x[1u * k4 + kk], g, inv[1u]), wv, lo.y); }
      if (p.m > 2u) { lo.z = fma4(normed4(x[2u * k4 + kk], g, inv[2u]), wv, lo.z); }
      if (p.m > 3u) { lo.w = fma4(normed4(x[3u * k4 + kk], g, inv[3u]), wv, lo.w); }
      if (p.m > 4u) { hi.x = fma4(normed4(x[4u * k4 + kk], g, inv[4u]), wv, hi.x); }
      if (p.m > 5u) { hi.y = fma4(normed4(x[5u * k4 + kk], g, inv[5u]), wv, hi.y); }
      if (p.m > 6u) { hi.z = fma4(normed4(x[6u * k4 + kk], g, inv[6u]), wv, hi.z); }
      if (p.m > 7u) { hi.w = fma4(normed4(x[7u * k4 + kk], g, inv[7u]), wv, hi.w); }
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
