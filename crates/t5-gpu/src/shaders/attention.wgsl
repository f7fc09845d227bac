// T5 attention for one (query i, head h, batch b) per workgroup:
// softmax(q k^T + bias + mask) v, no 1/sqrt(d) scaling. K/V rows of batch b start at b * kv_bstride
// rows (the KV cache keeps spare capacity per batch row). Fully masked rows give zeros (as the CPU).
// The bias is in its diagonal form [heads, q_len + kv_len - 1]: query i, key j at column j - i + q_len - 1.
// flags: 1 bias, 2 key mask, 4 float16 mode (scores, biased scores and probabilities rounded to float16 as
// transformers' eager float16 attention).
struct P {
  heads: u32, head_dim: u32, q_len: u32, kv_len: u32,
  causal: u32, flags: u32, kv_bstride: u32, _a: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> kmask: array<u32>;
@group(0) @binding(6) var<storage, read_write> scores: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 64>;

const NEG: f32 = -3.0e38;

fn visible(b: u32, i: u32, j: u32) -> bool {
  if ((p.flags & 2u) != 0u && kmask[b * p.kv_len + j] == 0u) { return false; }
  if (p.causal != 0xffffffffu && j > p.causal + i) { return false; }
  return true;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = wid.x;
  let h = wid.y;
  let b = wid.z;
  let inner = p.heads * p.head_dim;
  let qo = (b * p.q_len + i) * inner + h * p.head_dim;
  let so = ((b * p.heads + h) * p.q_len + i) * p.kv_len;
  let kb = b * p.kv_bstride;
  let half = (p.flags & 4u) != 0u;
  // scores and the running max
  var m = NEG;
  for (var j = lid.x; j < p.kv_len; j += 64u) {
    var s = 0.0;
    if (visible(b, i, j)) {
      let ko = (kb + j) * inner + h * p.head_dim;
      for (var d = 0u; d < p.head_dim; d++) { s = fma(q[qo + d], k[ko + d], s); }
      if (half) { s = round16(s); }
      if ((p.flags & 1u) != 0u) {
        s += bias[h * (p.q_len + p.kv_len - 1u) + p.q_len - 1u - i + j];
        if (half) { s = round16(s); }
      }
      m = max(m, s);
    } else {
      s = NEG;
    }
    scores[so + j] = s;
  }
  red[lid.x] = m;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid.x < st) { red[lid.x] = max(red[lid.x], red[lid.x + st]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var j = lid.x; j < p.kv_len; j += 64u) {
    var e = 0.0;
    if (visible(b, i, j)) { e = exp(scores[so + j] - mx); }
    scores[so + j] = e;
    sum += e;
  }
  red[lid.x] = sum;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid.x < st) { red[lid.x] += red[lid.x + st]; }
    workgroupBarrier();
  }
  let total = red[0];
  var inv = 0.0;
  if (total > 0.0) { inv = 1.0 / total; }
  storageBarrier();
  for (var d = lid.x; d < p.head_dim; d += 64u) {
    var acc = 0.0;
    for (var j = 0u; j < p.kv_len; j++) {
      var pj = scores[so + j];
      if (half) { pj = round16(pj * inv); }
      if (pj != 0.0) { acc = fma(pj, v[(kb + j) * inner + h * p.head_dim + d], acc); }
    }
    if (half) { out[qo + d] = acc; } else { out[qo + d] = acc * inv; }
  }
}
