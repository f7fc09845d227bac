// matmul_tiled.wgsl through shader-f16 (shaders/half.wgsl): out[m, n_off + j] = sum_k x[m, k] * w[j, k],
// 64x64 output tile per workgroup, 16x16 threads, 4x4 outputs per thread, K step 16. The weight tile holds
// f16 (half the bytes), the activation tile f32; each thread loads one vec4 of x and one vec4<f16> of w per
// K step. The same fma sequence as matmul_tiled.wgsl into four vec4<f32> accumulators (no private array
// indexed at run time, see there).
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> ta: array<array<f32, 65>, 16>; // [kk][row]
var<workgroup> tb: array<array<f16, 65>, 16>; // [kk][col]

fn store_row(gr: u32, c0: u32, v: vec4<f32>) {
  if (gr >= p.m) { return; }
  let base = gr * p.n + p.n_off;
  if (c0 < p.nc) { store(base + c0, v.x); }
  if (c0 + 1u < p.nc) { store(base + c0 + 1u, v.y); }
  if (c0 + 2u < p.nc) { store(base + c0 + 2u, v.z); }
  if (c0 + 3u < p.nc) { store(base + c0 + 3u, v.w); }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * 64u;
  let col0 = wid.x * 64u;
  let t = lid.y * 16u + lid.x;
  let ry = lid.y * 4u;
  let cx = lid.x * 4u;
  let k4 = p.k / 4u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  // each thread loads 4 consecutive k (one vec4, k % 4 == 0) of one row of x and of w: row t / 4, k (t % 4) * 4 ..
  let lr = t / 4u;
  let lk = (t % 4u) * 4u;
  var k0 = 0u;
  loop {
    if (k0 >= p.k) { break; }
    let gr = row0 + lr;
    let gc = col0 + lr;
    let gk = k0 + lk;
    var xv = vec4<f32>(0.0);
    if (gr < p.m && gk < p.k) { xv = x[gr * k4 + gk / 4u]; }
    var wv = vec4<f16>(0.0);
    if (gc < p.nc && gk < p.k) { wv = w[gc * k4 + gk / 4u]; }
    ta[lk][lr] = xv.x;
    ta[lk + 1u][lr] = xv.y;
    ta[lk + 2u][lr] = xv.z;
    ta[lk + 3u][lr] = xv.w;
    tb[lk][lr] = wv.x;
    tb[lk + 1u][lr] = wv.y;
    tb[lk + 2u][lr] = wv.z;
    tb[lk + 3u][lr] = wv.w;
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = vec4<f32>(ta[kk][ry], ta[kk][ry + 1u], ta[kk][ry + 2u], ta[kk][ry + 3u]);
      let b = vec4<f32>(vec4<f16>(tb[kk][cx], tb[kk][cx + 1u], tb[kk][cx + 2u], tb[kk][cx + 3u]));
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
    k0 += 16u;
  }
  let c0 = col0 + cx;
  store_row(row0 + ry, c0, acc0);
  store_row(row0 + ry + 1u, c0, acc1);
  store_row(row0 + ry + 2u, c0, acc2);
  store_row(row0 + ry + 3u, c0, acc3);
}
