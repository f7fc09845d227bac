// In place on x with y: op 0: x += y; op 1: x = act(x) * y (gated feed-forward); op 2: its float16
// form round16(act16(x) * y); op 3: x += y[i % cols] (a bias on every row of `cols`).
struct P { n: u32, op: u32, act: u32, cols: u32, _b: u32, _c: u32, _d: u32, _e: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  if (p.op == 0u) { x[i] = x[i] + y[i]; } else if (p.op == 1u) { x[i] = apply_act(x[i], p.act) * y[i]; } else if (p.op == 2u) { x[i] = round16(act16(x[i], p.act) * y[i]); } else { x[i] = x[i] + y[i % p.cols]; }
}
