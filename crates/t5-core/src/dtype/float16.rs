//! float16 activation maths: what transformers' float16 eager forward (`from_pretrained(dtype=torch.float16)`)
//! rounds, evaluates and clamps ([`crate::model::Half`]). Used by the backends' float16 mode.

use crate::act::apply_act;
use crate::config::Activation;

/// `x` rounded to float16 and back (round to nearest even; beyond the float16 range: ±inf), what a
/// float16 tensor of transformers holds.
#[inline]
pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// An activation as transformers evaluates it on a float16 tensor: `gelu_new` is a chain of torch ops
/// (`0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))`), each rounding to float16; relu, gelu and
/// silu are single torch kernels (computed in f32, rounded once).
pub fn act_f16(x: f32, act: Activation) -> f32 {
    let r = round_f16;
    match act {
        Activation::GeluNew => {
            let p3 = r(x * x * x);
            let a = r(0.044715f32 * p3);
            let b = r(x + a);
            let c = r(0.797_884_6f32 * b);
            let d = r(1.0 + r(c.tanh()));
            r(r(0.5 * x) * d)
        }
        a => r(apply_act(x, a)),
    }
}

/// T5LayerNorm of one float16-mode row: `weight * (x * rsqrt(mean(x^2) + eps)).to(float16)`, each
/// product rounded to float16 (the variance in f32).
pub fn rms_norm_f16_row(row: &[f32], weight: &[f32], eps: f32, out: &mut Vec<f32>) {
    let var = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    let inv = 1.0 / (var + eps).sqrt();
    out.extend(row.iter().zip(weight).map(|(v, w)| round_f16(w * round_f16(v * inv))));
}

/// Largest finite float16 (`torch.finfo(torch.float16).max`).
pub const F16_MAX: f32 = 65504.0;

/// T5Block's clamp bound when a value is inf: `finfo(float16).max - 1000` = 64504, which the float16 result
/// holds as 64512 (the nearest float16).
pub const F16_CLAMP: f32 = 64512.0;

/// transformers' T5Block float16 clamp, in place: when any value is ±inf, every value is clamped to
/// ±(65504 - 1000), stored in float16 as ±[`F16_CLAMP`]; otherwise to ±65504, which changes nothing in a
/// float16 tensor. NaN stays NaN.
pub fn clamp_f16_inf(data: &mut [f32]) {
    if data.iter().any(|v| v.is_infinite()) {
        let c = F16_CLAMP;
        for v in data.iter_mut() {
            if *v > c {
                *v = c;
            } else if *v < -c {
                *v = -c;
            }
        }
    }
}
