// In place on x: op 0: x *= s; op 1: x = act(x); op 2: x = round16(x); op 3: x = act16(x) (float16 mode);
// op 4: x = tanh(x).
struct P { n: u32, op: u32, act: u32, s: f32, _a: u32, _b: u32, _c: u32, _d: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  switch p.op {
    case 0u: { x[i] = x[i] * p.s; }
    case 1u: { x[i] = apply_act(x[i], p.act); }
    case 2u: { x[i] = round16(x[i]); }
    case 3u: { x[i] = act16(x[i], p.act); }
    default: { x[i] = tanh(x[i]); }
  }
}
