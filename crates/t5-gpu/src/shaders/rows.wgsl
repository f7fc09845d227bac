// One partial sum per row in two vec4 registers (rows 0-3, 4-7), updated in an unrolled, guarded sequence and
// read back through `select`: no private array indexed at run time (NVIDIA's compiler keeps such an array in
// local memory; see matmul_tiled.wgsl). Each row's sum is the same fma sequence as before.
fn pick(lo: vec4<f32>, hi: vec4<f32>, r: u32) -> f32 {
  let v = select(lo, hi, r >= 4u);
  let i = r & 3u;
  return select(select(select(v.x, v.y, i == 1u), v.z, i == 2u), v.w, i == 3u);
}
