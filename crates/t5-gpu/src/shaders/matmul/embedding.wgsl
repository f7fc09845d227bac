// out[r, :] = table[ids[r] - row0, :] for the ids that fall in this chunk of the table (wload: the weight form's
// element load, dequantized / unpacked to f32).
struct P { rows: u32, d: u32, row0: u32, nrows: u32, _a: u32, _b: u32, _c: u32, _d: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.y;
  let id = ids[r];
  if (id < p.row0 || id >= p.row0 + p.nrows) { return; }
  let src = (id - p.row0) * p.d;
  for (var i = wid.x * 64u + lid.x; i < p.d; i += 64u * 64u) { out[r * p.d + i] = wload(src + i); }
}
