// The float16 model's matmuls through WebGPU `shader-f16` (the module starts with `enable f16;`):
// float16 weights are f16 values, read four at a time as vec4<f16> (k % 4 == 0) and held in workgroup
// memory as f16; activations are read as vec4<f32>. mul4: the four products of one vec4 step as f32, so
// that sums accumulate in f32 as torch's float16 matmul does; XT is the type activations are multiplied
// in. Both come from lib.rs HALF_PRODUCTS (exact products: float16 products fail the fp16 oracle).
//HALF_PRODUCTS
fn dot4(a: vec4<f32>, b: vec4<f16>) -> f32 {
  let q = mul4(vec4<XT>(a), b);
  return (q.x + q.y) + (q.z + q.w);
}
