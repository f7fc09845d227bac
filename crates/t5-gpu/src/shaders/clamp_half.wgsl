// T5Block's float16 clamp, in place, one workgroup for the whole tensor: when any value is ±inf, every
// value is clamped to ±64512 (finfo(float16).max - 1000 held in float16); NaN stays NaN. Bit tests:
// WGSL may assume no inf / NaN in float comparisons.
struct P { n: u32, _a: u32, _b: u32, _c: u32, _d: u32, _e: u32, _f: u32, _g: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

var<workgroup> any_inf: atomic<u32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  if (lid.x == 0u) { atomicStore(&any_inf, 0u); }
  workgroupBarrier();
  var found = false;
  for (var i = lid.x; i < p.n; i += 256u) {
    if ((bitcast<u32>(x[i]) & 0x7fffffffu) == 0x7f800000u) { found = true; }
  }
  if (found) { atomicStore(&any_inf, 1u); }
  workgroupBarrier();
  if (atomicLoad(&any_inf) == 0u) { return; }
  let c = 0x477c0000u; // 64512.0
  for (var i = lid.x; i < p.n; i += 256u) {
    let b = bitcast<u32>(x[i]);
    let a = b & 0x7fffffffu;
    if (a <= 0x7f800000u && a > c) { x[i] = bitcast<f32>((b & 0x80000000u) | c); }
  }
}
