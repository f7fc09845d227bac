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
