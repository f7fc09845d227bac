// Output stage of the matmul kernels (p.epi): bit 0 rounds the product to float16; bits 1-2 combine it
// with the value already in `out` (fused neighbours): 1 out + v (residual add), 2 act(out) * v (gated
// feed-forward), 3 act(v); bits 4-7 the activation, bit 8 the float16 form (act16); bit 3 rounds the result.
fn store(i: u32, v0: f32) {
  var v = v0;
  let e = p.epi;
  if ((e & 1u) != 0u) { v = round16(v); }
  let op = (e >> 1u) & 3u;
  let act = (e >> 4u) & 15u;
  let h16 = (e & 256u) != 0u;
  if (op == 1u) {
    v = out[i] + v;
  } else if (op == 2u) {
    var g = out[i];
    if (h16) { g = act16(g, act); } else { g = apply_act(g, act); }
    v = g * v;
  } else if (op == 3u) {
    if (h16) { v = act16(v, act); } else { v = apply_act(v, act); }
  }
  if ((e & 8u) != 0u) { v = round16(v); }
  out[i] = v;
}
