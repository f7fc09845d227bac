// The float16 model's matmuls through WebGPU `shader-f16` (the module starts with `enable f16;`):
// float16 weights are f16 values, read four at a time as vec4<f16> (k % 4 == 0) and held in workgroup
// memory as f16; activations are read as vec4<f32>. Products are exact (a float16 x float16 product fits
// an f32) and sums f32, as in torch's float16 matmul: float16 products fail the fp16 oracle (lib.rs).
// fma4: acc + a . b in k order, the fma sequence of the packed kernels' scalar loop.
fn fma4(a: vec4<f32>, b: vec4<f16>, acc: f32) -> f32 {
  let bf = vec4<f32>(b);
  return fma(a.w, bf.w, fma(a.z, bf.z, fma(a.y, bf.y, fma(a.x, bf.x, acc))));
}
