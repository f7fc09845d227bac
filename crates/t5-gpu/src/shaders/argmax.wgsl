// Index of the largest value of each row (first on ties; NaN never wins; all-NaN rows give 0),
// skipping the suppressed ids (min_new_tokens: EOS). One workgroup per row; one u32 out per row.
struct P { rows: u32, cols: u32, n_suppress: u32, _a: u32, _b: u32, _c: u32, _d: u32, _e: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> suppress: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;

fn is_nan(v: f32) -> bool {
  let b = bitcast<u32>(v);
  return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

fn suppressed(j: u32) -> bool {
  for (var s = 0u; s < p.n_suppress; s++) { if (suppress[s] == j) { return true; } }
  return false;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.x;
  let base = r * p.cols;
  var bv = 0.0;
  var bi = 0xffffffffu; // none yet
  for (var j = lid.x; j < p.cols; j += 256u) {
    var v = x[base + j];
    if (suppressed(j)) { continue; } // as -inf: never above a real logit
    if (is_nan(v)) { continue; }
    if (bi == 0xffffffffu || v > bv) { bv = v; bi = j; }
  }
  rv[lid.x] = bv;
  ri[lid.x] = bi;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid.x < st) {
      let ov = rv[lid.x + st];
      let oi = ri[lid.x + st];
      let mi = ri[lid.x];
      if (oi != 0xffffffffu && (mi == 0xffffffffu || ov > rv[lid.x] || (ov == rv[lid.x] && oi < mi))) {
        rv[lid.x] = ov;
        ri[lid.x] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    var res = ri[0];
    if (res == 0xffffffffu) { res = 0u; }
    out[r] = res;
  }
}
