// out[b, :] = x[b * stride + offset, :] (last position of each batch row).
struct P { batch: u32, d: u32, stride: u32, offset: u32, _a: u32, _b: u32, _c: u32, _d: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.y;
  let src = (b * p.stride + p.offset) * p.d;
  for (var i = wid.x * 64u + lid.x; i < p.d; i += 64u * 64u) { out[b * p.d + i] = x[src + i]; }
}
