//! The decoder's key / value cache (transformers' `past_key_values`): cross-attention keys and values projected once
//! from the encoder output, self-attention keys and values growing by the decoded positions.

use super::T5;
use crate::backend::Backend;
use crate::error::{Result, T5Error};
use crate::tensor::Tensor;

/// Per-layer keys/values for incremental decoding. Cross-attention K/V are projected once from
/// the encoder output; self-attention K/V grow by one position per step.
pub struct DecoderCache<B: Backend> {
    pub(super) self_kv: Vec<Option<(B::Tensor, B::Tensor)>>,
    pub(super) cross_kv: Vec<(B::Tensor, B::Tensor)>,
    pub(super) encoder_mask: Vec<u32>,
    pub(super) encoder_len: usize,
    pub(super) batch: usize,
    pub(super) past_len: usize,
}

impl<B: Backend> DecoderCache<B> {
    pub fn past_len(&self) -> usize {
        self.past_len
    }
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Number of decoder layers the cache holds.
    pub fn num_layers(&self) -> usize {
        self.cross_kv.len()
    }
    /// Layer `i`'s self-attention keys and values (`None` before the first step) and cross-attention keys and
    /// values, `[batch, len, heads * d_kv]` as the backend holds them.
    #[allow(clippy::type_complexity)]
    pub fn layer(&self, i: usize) -> (Option<(&B::Tensor, &B::Tensor)>, (&B::Tensor, &B::Tensor)) {
        (self.self_kv[i].as_ref().map(|(k, v)| (k, v)), (&self.cross_kv[i].0, &self.cross_kv[i].1))
    }
    /// The encoder padding mask the cross-attention uses, `[batch, encoder_len]`.
    pub fn encoder_mask(&self) -> &[u32] {
        &self.encoder_mask
    }
    /// Preallocate every layer's self-attention keys/values for `capacity` decoder positions (the static
    /// cache, `cache_implementation: "static"`): each step then writes its rows in place
    /// ([`Backend::write_seq`]) instead of growing the tensors. Only before the first step. A static cache is
    /// recognised by its tensors being longer than `past_len`; [`DecoderCache::layer`] returns them whole.
    pub fn preallocate(&mut self, backend: &B, capacity: usize) -> Result<()> {
        if !backend.static_kv() {
            return Err(T5Error::BadConfig(format!("cache_implementation \"static\" is not supported by the {} backend", backend.name())));
        }
        if self.past_len != 0 || capacity == 0 {
            return Err(T5Error::BadInput("a static cache is allocated before the first decoder step, for at least one position".into()));
        }
        let inner = backend.shape(&self.cross_kv[0].0)[2];
        for kv in &mut self.self_kv {
            let z = || backend.upload(Tensor::zeros(vec![self.batch, capacity, inner]));
            *kv = Some((z(), z()));
        }
        Ok(())
    }
    /// Positions a preallocated (static) cache holds; `None` for the growing cache.
    pub fn capacity(&self, backend: &B) -> Option<usize> {
        match self.self_kv.first() {
            Some(Some((k, _))) if backend.shape(k)[1] > self.past_len => Some(backend.shape(k)[1]),
            _ => None,
        }
    }
    /// Beam search: batch row `i` of the self-attention cache takes row `index[i]`, in place. (Cross-attention
    /// rows are not touched: beams of one input share the encoder output.)
    pub fn reorder(&mut self, backend: &B, index: &[usize]) {
        let used = self.past_len;
        for (k, v) in self.self_kv.iter_mut().flatten() {
            backend.reorder_batch(k, index, used);
            backend.reorder_batch(v, index, used);
        }
    }
}

impl<B: Backend> T5<B> {
    /// Start decoding against an encoder output: project each layer's cross-attention keys and
    /// values once.
    pub fn start_decoding(&self, encoder_hidden: &B::Tensor, encoder_mask: &[u32]) -> Result<DecoderCache<B>> {
        let dec = self.decoder_stack()?;
        let shape = self.backend.shape(encoder_hidden);
        let (batch, encoder_len) = (shape[0], shape[1]);
        if encoder_mask.len() != batch * encoder_len {
            return Err(T5Error::BadInput("encoder mask does not match the encoder output".into()));
        }
        let cross_kv = dec
            .blocks
            .iter()
            .map(|bl| {
                let a = &bl.cross.as_ref().expect("decoder block has cross-attention").1;
                (self.lin(encoder_hidden, &a.k), self.lin(encoder_hidden, &a.v))
            })
            .collect();
        Ok(DecoderCache {
            self_kv: (0..dec.blocks.len()).map(|_| None).collect(),
            cross_kv,
            encoder_mask: encoder_mask.to_vec(),
            encoder_len,
            batch,
            past_len: 0,
        })
    }

    /// A decoder cache rebuilt from host tensors (transformers' `past_key_values` given back in): per layer
    /// `[self K, self V, cross K, cross V]`, self `[batch, past_len, heads * d_kv]`, cross `[batch, encoder_len,
    /// heads * d_kv]`; `encoder_mask` `[batch, encoder_len]` (all ones when `None`).
    pub fn cache_from_host(&self, layers: Vec<[Tensor; 4]>, encoder_mask: Option<Vec<u32>>) -> Result<DecoderCache<B>> {
        let dec = self.decoder_stack()?;
        if layers.len() != dec.blocks.len() {
            return Err(T5Error::BadInput(format!("past_key_values has {} layers, the decoder {}", layers.len(), dec.blocks.len())));
        }
        let inner = self.config.inner_dim();
        let (batch, past_len, encoder_len) = match layers.first() {
            Some([sk, _, ck, _]) if sk.shape.len() == 3 && ck.shape.len() == 3 => (sk.shape[0], sk.shape[1], ck.shape[1]),
            _ => return Err(T5Error::BadInput("past_key_values tensors must be [batch, len, heads * d_kv]".into())),
        };
        let mut self_kv = Vec::with_capacity(layers.len());
        let mut cross_kv = Vec::with_capacity(layers.len());
        for [sk, sv, ck, cv] in layers {
            for (t, len) in [(&sk, past_len), (&sv, past_len), (&ck, encoder_len), (&cv, encoder_len)] {
                if t.shape != [batch, len, inner] {
                    return Err(T5Error::BadInput(format!("past_key_values tensor of shape {:?}, expected {:?}", t.shape, [batch, len, inner])));
                }
            }
            let be = &self.backend;
            self_kv.push(if past_len == 0 { None } else { Some((be.upload(sk), be.upload(sv))) });
            cross_kv.push((be.upload(ck), be.upload(cv)));
        }
        let encoder_mask = encoder_mask.unwrap_or_else(|| vec![1; batch * encoder_len]);
        if encoder_mask.len() != batch * encoder_len {
            return Err(T5Error::BadInput("attention_mask does not match the cached encoder length".into()));
        }
        Ok(DecoderCache { self_kv, cross_kv, encoder_mask, encoder_len, batch, past_len })
    }
}
