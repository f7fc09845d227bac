//! The activations of T5's feed-forward as scalar f32 functions (transformers' `ACT2FN`), shared by
//! the CPU backend and the float16 activation maths ([`crate::dtype::float16`]).

use crate::config::Activation;

/// tanh-approximated GELU (`gelu_new`), as transformers' `NewGELUActivation`.
#[inline]
pub fn gelu_new(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
}

/// exact GELU: `x * 0.5 * (1 + erf(x / sqrt(2)))`.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[inline]
pub fn apply_act(x: f32, act: Activation) -> f32 {
    match act {
        // a comparison, not `f32::max` (a libm call in wasm); NaN gives 0, as `max` did
        Activation::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Activation::Gelu => gelu(x),
        Activation::GeluNew => gelu_new(x),
        Activation::Silu => silu(x),
    }
}
