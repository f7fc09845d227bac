// matmul_thread.wgsl through shader-f16 (shaders/half.wgsl): x @ w^T on software adapters, each
// invocation 4 adjacent outputs of one row straight from memory (no workgroup memory, no barriers),
// k stepped four at a time.
struct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.y;
  let c0 = (wid.x * 64u + lid.x) * 4u;
  if (r >= p.m || c0 >= p.nc) { return; }
  let k4 = p.k / 4u;
  var acc = vec4<f32>(0.0);
  let xb = r * k4;
  let w0 = c0 * k4;
  let w1 = min(c0 + 1u, p.nc - 1u) * k4;
  let w2 = min(c0 + 2u, p.nc - 1u) * k4;
  let w3 = min(c0 + 3u, p.nc - 1u) * k4;
  for (var kk = 0u; kk < k4; kk++) {
    let xv = x[xb + kk];
    acc = vec4<f32>(fma4(xv, w[w0 + kk], acc.x), fma4(xv, w[w1 + kk], acc.y), fma4(xv, w[w2 + kk], acc.z), fma4(xv, w[w3 + kk], acc.w));
  }
  let o = r * p.n + p.n_off;
  store(o + c0, acc.x);
  if (c0 + 1u < p.nc) { store(o + c0 + 1u, acc.y); }
  if (c0 + 2u < p.nc) { store(o + c0 + 2u, acc.z); }
  if (c0 + 3u < p.nc) { store(o + c0 + 3u, acc.w); }
}
