// Prologue NORM: the matmul reads norm(x) = nw * x * rsqrt(mean(x^2) + eps) (float16 form with p.half, as
// transformers' T5LayerNorm in float16), the per-row scales inv[r] computed by `prologue`.
@group(0) @binding(5) var<storage, read_write> h: array<f32>;
fn normed(v: f32, g: f32, iv: f32) -> f32 {
  if (p.half != 0u) { return round16(g * round16(v * iv)); }
  return g * (v * iv);
}
fn xin(r: u32, kk: u32) -> vec4<f32> {
  let v = x4(r, kk);
  let g = nwv4(kk, kk);
  let iv = inv[r];
  return vec4<f32>(normed(v.x, g.x, iv), normed(v.y, g.y, iv), normed(v.z, g.z, iv), normed(v.w, g.w, iv));
}
