// out[m, n_off + j] = sum_k x[m, k] * w[j, k]  (x @ w^T for one row chunk of the weight)
// 64x64 output tile per workgroup, 16x16 threads, 4x4 outputs per thread, K step 16.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
//WEIGHTS
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> ta: array<array<f32, 65>, 16>; // [kk][row]
var<workgroup> tb: array<array<f32, 65>, 16>; // [kk][col]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * 64u;
  let col0 = wid.x * 64u;
  let t = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = 0.0; } }
  var k0 = 0u;
  loop {
    if (k0 >= p.k) { break; }
    // load 64x16 of x and of w: 1024 values each, 4 per thread
    for (var e = 0u; e < 4u; e++) {
      let idx = t * 4u + e;
      let r = idx / 16u;
      let kk = idx % 16u;
      let gk = k0 + kk;
      let gr = row0 + r;
      var xv = 0.0;
      if (gr < p.m && gk < p.k) { xv = x[gr * p.k + gk]; }
      ta[kk][r] = xv;
      let gc = col0 + r;
      var wv = 0.0;
      if (gc < p.nc && gk < p.k) { wv = wload(gc * p.k + gk); }
      tb[kk][r] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = ta[kk][lid.y * 4u + i]; b[i] = tb[kk][lid.x * 4u + i]; }
      for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); } }
    }
    workgroupBarrier();
    k0 += 16u;
  }
  for (var i = 0u; i < 4u; i++) {
    let gr = row0 + lid.y * 4u + i;
    if (gr >= p.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let gc = col0 + lid.x * 4u + j;
      if (gc < p.nc) { store(gr * p.n + p.n_off + gc, acc[i][j]); }
    }
  }
}
