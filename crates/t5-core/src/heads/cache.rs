//! transformers' `past_key_values` layout of a [`DecoderCache`] (`[batch, heads, len, d_kv]`) and back.

use super::bad;
use crate::backend::Backend;
use crate::error::Result;
use crate::model::{DecoderCache, T5};
use crate::tensor::Tensor;

/// Layer `i` of a cache as transformers' `past_key_values` hold it: `[self K, self V, cross K, cross V]`, each
/// `[batch, heads, len, d_kv]` (self K / V have `len` 0 before the first step).
pub fn past_key_values<B: Backend>(model: &T5<B>, cache: &DecoderCache<B>) -> Vec<[Tensor; 4]> {
    let be = model.backend();
    let (heads, dk) = (model.config.num_heads, model.config.d_kv);
    let to_heads = |t: Option<&B::Tensor>, len_if_none: usize| -> Tensor {
        match t {
            None => Tensor::new(vec![cache.batch(), heads, len_if_none, dk], vec![]),
            Some(t) => {
                let t = be.download(t);
                let (b, len) = (t.shape[0], t.shape[1]);
                let mut data = vec![0.0; t.numel()];
                for bi in 0..b {
                    for j in 0..len {
                        for h in 0..heads {
                            let src = ((bi * len + j) * heads + h) * dk;
                            let dst = ((bi * heads + h) * len + j) * dk;
                            data[dst..dst + dk].copy_from_slice(&t.data[src..src + dk]);
                        }
                    }
                }
                Tensor::new(vec![b, heads, len, dk], data)
            }
        }
    };
    (0..cache.num_layers())
        .map(|i| {
            let (s, (ck, cv)) = cache.layer(i);
            [to_heads(s.map(|x| x.0), 0), to_heads(s.map(|x| x.1), 0), to_heads(Some(ck), 0), to_heads(Some(cv), 0)]
        })
        .collect()
}

/// The inverse of [`past_key_values`]: `[batch, heads, len, d_kv]` tensors → the `[batch, len, heads * d_kv]` layout
/// [`T5::cache_from_host`] takes.
pub fn from_heads_layout(t: &Tensor) -> Result<Tensor> {
    if t.shape.len() != 4 {
        return Err(bad(format!("past_key_values tensors must be [batch, heads, len, d_kv], got {:?}", t.shape)));
    }
    let (b, heads, len, dk) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
    let mut data = vec![0.0; t.numel()];
    for bi in 0..b {
        for h in 0..heads {
            for j in 0..len {
                let src = ((bi * heads + h) * len + j) * dk;
                let dst = ((bi * len + j) * heads + h) * dk;
                data[dst..dst + dk].copy_from_slice(&t.data[src..src + dk]);
            }
        }
    }
    Ok(Tensor::new(vec![b, len, heads * dk], data))
}
