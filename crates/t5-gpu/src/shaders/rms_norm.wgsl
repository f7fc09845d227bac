// T5 layer norm: out = w * x * rsqrt(mean(x^2) + eps), one workgroup per row; half (float16
// activations): out = round16(w * round16(x * rsqrt(..))) as transformers' T5LayerNorm in float16.
struct P { rows: u32, d: u32, eps: f32, half: u32, _b: u32, _c: u32, _d: u32, _e: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  var s = 0.0;
  for (var i = lid.x; i < p.d; i += 64u) { let v = x[base + i]; s = fma(v, v, s); }
  red[lid.x] = s;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid.x < st) { red[lid.x] += red[lid.x + st]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(red[0] / f32(p.d) + p.eps);
  if (p.half != 0u) {
    for (var i = lid.x; i < p.d; i += 64u) { out[base + i] = round16(w[i] * round16(x[base + i] * inv)); }
  } else {
    for (var i = lid.x; i < p.d; i += 64u) { out[base + i] = w[i] * (x[base + i] * inv); }
  }
}
