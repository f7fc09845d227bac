// The k largest values of each row with their ids, and the row's max and sum of exp(x - max): what
// beam search and top-k sampling need of a step's logits, so that 2k + 3 words per row come back
// instead of the whole vocabulary (t5_core::backend::TopKRows; its host reduction is the reference).
// Order: larger value first, lower id first on ties; NaN and the suppressed ids are never picked
// (min-length's EOS), but the suppressed ids count in the max / sum as they do in transformers'
// log-softmax; a second sum skips them and the gathered ids (relative to the largest value not suppressed, the
// first pick): the mass the processors leave as it is, for top-p. A row with fewer than k candidates ends in id 0xffffffff, value -inf.
// One workgroup per row. Round t picks the best element ranked after pick t-1, so no list of picks
// is kept. Then the values at the g ids `gather` names for the row (the ids a logits processor may change,
// whatever their rank; 0xffffffff or an id past the row: -inf).
// out, per row r at r * (2k + 3 + g): k value bits, k ids, max bits, sum bits, kept sum bits, g gathered value bits.
struct P { rows: u32, cols: u32, k: u32, n_suppress: u32, g: u32, _b: u32, _c: u32, _d: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> suppress: array<u32>;
@group(0) @binding(3) var<storage, read> gather: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

const NONE: u32 = 0xffffffffu;
// -inf cannot be a WGSL constant: the lowest finite f32 stands in while reducing, -inf's bits are written
const LOWEST: f32 = -3.0e38; // below any finite logit
const NEG_INF_BITS: u32 = 0xff800000u;

var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;
var<workgroup> rk: array<f32, 256>;

fn is_nan(v: f32) -> bool {
  let b = bitcast<u32>(v);
  return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

fn suppressed(j: u32) -> bool {
  for (var s = 0u; s < p.n_suppress; s++) { if (suppress[s] == j) { return true; } }
  return false;
}

fn gathered(r: u32, j: u32) -> bool {
  for (var s = 0u; s < p.g; s++) { if (gather[r * p.g + s] == j) { return true; } }
  return false;
}

// (v, i) ranks before (bv, bi); bi == NONE: nothing yet
fn before(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return bi == NONE || v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.x;
  let base = r * p.cols;
  let t = lid.x;
  // the row's max (NaN skipped) and its max over the ids not suppressed
  var m = LOWEST;
  var mk = LOWEST;
  for (var j = t; j < p.cols; j += 256u) {
    let v = x[base + j];
    if (!is_nan(v)) {
      m = max(m, v);
      if (!suppressed(j)) { mk = max(mk, v); }
    }
  }
  rv[t] = m;
  rk[t] = mk;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (t < st) {
      rv[t] = max(rv[t], rv[t + st]);
      rk[t] = max(rk[t], rk[t + st]);
    }
    workgroupBarrier();
  }
  let mx = rv[0];
  let mkx = rk[0];
  workgroupBarrier();
  // sum of exp(x - max), and of exp(x - kept max) over the ids neither suppressed nor gathered
  var s = 0.0;
  var sk = 0.0;
  if (mx > LOWEST) {
    for (var j = t; j < p.cols; j += 256u) {
      let v = x[base + j];
      if (!is_nan(v)) {
        s += exp(v - mx);
        if (mkx > LOWEST && !suppressed(j) && !gathered(r, j)) { sk += exp(v - mkx); }
      }
    }
  }
  rv[t] = s;
  rk[t] = sk;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (t < st) {
      rv[t] = rv[t] + rv[t + st];
      rk[t] = rk[t] + rk[t + st];
    }
    workgroupBarrier();
  }
  let ob = r * (2u * p.k + 3u + p.g);
  for (var j = t; j < p.g; j += 256u) {
    let id = gather[r * p.g + j];
    out[ob + 2u * p.k + 3u + j] = select(NEG_INF_BITS, bitcast<u32>(x[base + min(id, p.cols - 1u)]), id < p.cols);
  }
  if (t == 0u) {
    out[ob + 2u * p.k] = select(bitcast<u32>(mx), NEG_INF_BITS, mx == LOWEST);
    out[ob + 2u * p.k + 1u] = bitcast<u32>(rv[0]);
    out[ob + 2u * p.k + 2u] = bitcast<u32>(rk[0]);
  }
  workgroupBarrier();
  // k rounds: the best element ranked after the previous pick (lv, li)
  var lv = 0.0;
  var li = NONE;
  for (var round = 0u; round < p.k; round++) {
    var bv = 0.0;
    var bi = NONE;
    for (var j = t; j < p.cols; j += 256u) {
      let v = x[base + j];
      if (is_nan(v) || suppressed(j)) { continue; }
      if (li != NONE && !before(lv, li, v, j)) { continue; } // not after the last pick
      if (before(v, j, bv, bi)) { bv = v; bi = j; }
    }
    rv[t] = bv;
    ri[t] = bi;
    workgroupBarrier();
    for (var st = 128u; st > 0u; st >>= 1u) {
      if (t < st) {
        let ov = rv[t + st];
        let oi = ri[t + st];
        if (oi != NONE && before(ov, oi, rv[t], ri[t])) {
          rv[t] = ov;
          ri[t] = oi;
        }
      }
      workgroupBarrier();
    }
    lv = rv[0];
    li = workgroupUniformLoad(&ri[0]);
    if (t == 0u) {
      out[ob + round] = select(bitcast<u32>(lv), NEG_INF_BITS, li == NONE);
      out[ob + p.k + round] = li;
    }
    if (li == NONE) {
      // out of candidates: the remaining picks are none
      if (t == 0u) {
        for (var rest = round + 1u; rest < p.k; rest++) {
          out[ob + rest] = NEG_INF_BITS;
          out[ob + p.k + rest] = NONE;
        }
      }
      break;
    }
    workgroupBarrier();
  }
}
