// Activations shared by the element-wise kernels. act: 0 relu, 1 gelu (erf), 2 gelu_new (tanh), 3 silu.
fn tanh_safe(x: f32) -> f32 {
  let c = clamp(x, -15.0, 15.0);
  let e = exp(2.0 * c);
  return (e - 1.0) / (e + 1.0);
}
fn erf_approx(x: f32) -> f32 {
  // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7)
  let s = sign(x);
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return s * y;
}
fn apply_act(x: f32, act: u32) -> f32 {
  switch act {
    case 0u: { return max(x, 0.0); }
    case 1u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
    case 2u: { return 0.5 * x * (1.0 + tanh_safe(0.7978845608 * (x + 0.044715 * x * x * x))); }
    default: { return x / (1.0 + exp(-x)); }
  }
}

// float16 activations (transformers' dtype=torch.float16 numerics), computed in f32:
// round16(x) is x rounded to the nearest float16 (ties to even), ±inf beyond the float16 range, by
// bit arithmetic (pack2x16float leaves out-of-range values indeterminate).
fn round16(x: f32) -> f32 {
  let b = bitcast<u32>(x);
  let sgn = b & 0x80000000u;
  let a = b & 0x7fffffffu;
  if (a >= 0x7f800000u) { return x; }                              // inf, NaN
  if (a >= 0x477ff000u) { return bitcast<f32>(sgn | 0x7f800000u); } // >= 65520: inf
  if (a < 0x38800000u) {                                            // below 2^-14: float16 subnormals, step 2^-24
    let q = round(bitcast<f32>(a) * 16777216.0);                    // round() ties to even
    return bitcast<f32>(sgn | bitcast<u32>(q * 5.9604644775390625e-8));
  }
  let m = (a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u;           // drop 13 mantissa bits, ties to even
  return bitcast<f32>(sgn | m);
}
// transformers' activation on a float16 tensor: gelu_new op by op (each torch op rounds), others once.
fn act16(x: f32, act: u32) -> f32 {
  if (act == 2u) {
    let p3 = round16(x * x * x);
    let a = round16(0.044715 * p3);
    let b = round16(x + a);
    let c = round16(0.7978846 * b);
    let d = round16(1.0 + round16(tanh_safe(c)));
    return round16(round16(0.5 * x) * d);
  }
  return round16(apply_act(x, act));
}
