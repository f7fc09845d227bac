// Many rows (the encoder, prefill): out[m, n_off + j] = sum_k x[m, k] * w[j, k] for one row chunk of the weight.
// 64x64 output tile per workgroup, 16x16 threads, a 4x4 register tile per thread (four vec4 accumulators),
// K step 16 through shared-memory tiles held as vec4s of 4 rows / 4 columns, so each of the 16 inner steps is
// two vec4 shared-memory reads and four vec4 fmas. Each thread loads one vec4 of x and one of w per K step
// (x4 / w4 of the prelude: vec4 loads when k % 4 == 0, dequantized / unpacked by the weight form).
// No private array is indexed at run time (NVIDIA's compiler put such arrays in local memory, which made a
// kernel ~50x slower there: 1.8 ms for [32, 512] x [512, 512] on an H100).
var<workgroup> ta: array<array<vec4<f32>, 16>, 16>; // [kk][row / 4][row % 4]
var<workgroup> tb: array<array<vec4<f32>, 16>, 16>; // [kk][col / 4][col % 4]

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
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  // each thread loads 4 consecutive k of one row of x and of w: row t / 4, k (t % 4) * 4 ..
  let lr = t / 4u;
  let lk = (t % 4u) * 4u;
  let l4 = lr >> 2u;
  let lc = lr & 3u;
  var k0 = 0u;
  loop {
    if (k0 >= p.k) { break; }
    let gr = row0 + lr;
    let gc = col0 + lr;
    let gk = k0 + lk;
    var xv = vec4<f32>(0.0);
    if (gr < p.m && gk < p.k) { xv = x4(gr, gk); }
    var wv = vec4<f32>(0.0);
    if (gc < p.nc && gk < p.k) { wv = w4(gc, gk); }
    ta[lk][l4][lc] = xv.x;
    ta[lk + 1u][l4][lc] = xv.y;
    ta[lk + 2u][l4][lc] = xv.z;
    ta[lk + 3u][l4][lc] = xv.w;
    tb[lk][l4][lc] = wv.x;
    tb[lk + 1u][l4][lc] = wv.y;
    tb[lk + 2u][l4][lc] = wv.z;
    tb[lk + 3u][l4][lc] = wv.w;
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = ta[kk][lid.y];
      let b = tb[kk][lid.x];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
    k0 += 16u;
  }
  let ry = row0 + lid.y * 4u;
  let c0 = col0 + lid.x * 4u;
  store_row(ry, c0, acc0);
  store_row(ry + 1u, c0, acc1);
  store_row(ry + 2u, c0, acc2);
  store_row(ry + 3u, c0, acc3);
}
