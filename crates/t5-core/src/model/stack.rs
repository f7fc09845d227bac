//! The encoder and decoder stacks (transformers' `T5Stack`): embeddings → blocks → final layer norm, with the
//! relative position bias shared by the blocks; the decoder attends to its cache and to the encoder output.

use super::layers::Block;
use super::{Batch, DecoderCache, OutputFlags, StackOutputs, T5};
use crate::backend::{AttentionMask, Backend};
use crate::error::{Result, T5Error};
use crate::position::compute_bias;
use crate::tensor::Tensor;

pub(super) struct Stack<B: Backend> {
    pub(super) blocks: Vec<Block<B>>,
    pub(super) final_norm: B::Tensor,
    /// `block.0.layer.0.SelfAttention.relative_attention_bias.weight`, `[num_buckets, heads]`, shared by all layers.
    pub(super) relative_bias: Tensor,
}

impl<B: Backend> T5<B> {
    pub(super) fn check_ids(&self, ids: &[u32]) -> Result<()> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(T5Error::BadInput(format!("token id {bad} is outside the vocabulary of {}", self.config.vocab_size)));
        }
        Ok(())
    }

    /// Encoder stack: embeddings → blocks (self-attention with bidirectional relative bias and the
    /// padding mask, feed-forward; pre-norm residuals) → final layer norm. `[batch, seq, d_model]`.
    pub fn encode(&self, input: &Batch) -> Result<B::Tensor> {
        self.encode_with(input, None)
    }
    /// [`Self::encode`], recording hidden states / attentions into `rec` as `flags` ask.
    pub fn encode_with(&self, input: &Batch, mut rec: Option<(&mut StackOutputs, OutputFlags)>) -> Result<B::Tensor> {
        self.check_ids(&input.ids)?;
        crate::budget::check_encode(self, input.batch, input.seq)?;
        let be = &self.backend;
        let enc = &self.encoder;
        let (b, s) = (input.batch, input.seq);
        let mut x = be.embedding(&self.shared, &input.ids, &[b, s]);
        let bias = be.upload(compute_bias(&enc.relative_bias, s, s, 0, true, self.config.relative_attention_max_distance));
        let mask = AttentionMask { key_mask: Some(&input.mask), causal_offset: None };
        let mut stream_half = true;
        for block in &enc.blocks {
            if let Some((r, f)) = rec.as_mut() {
                if f.hidden_states {
                    r.hidden_states.push(be.download(&x));
                }
            }
            let h = self.norm(&x, &block.self_norm);
            let a = &block.self_attn;
            let (q, k, v) = (self.lin(&h, &a.q), self.lin(&h, &a.k), self.lin(&h, &a.v));
            let probs = rec.as_mut().filter(|(_, f)| f.attentions).map(|(r, _)| &mut r.attentions);
            let mut ctx = self.attend(&q, &k, &v, Some(&bias), mask, self.attention_shape(b, s, s), probs);
            self.rh(&mut ctx);
            self.attn_residual(&mut x, &self.lin(&ctx, &a.o), stream_half);
            let h = self.norm(&x, &block.ff_norm);
            stream_half = self.ff_residual(&mut x, &self.feed_forward(&block.ff, &h), stream_half);
        }
        let out = self.norm(&x, &enc.final_norm);
        if let Some((r, f)) = rec {
            if f.hidden_states {
                r.hidden_states.push(be.download(&out));
            }
        }
        Ok(out)
    }

    pub(super) fn decoder_stack(&self) -> Result<&Stack<B>> {
        self.decoder.as_ref().ok_or_else(|| T5Error::BadInput("this model has no decoder (T5EncoderModel)".into()))
    }
    /// Run the decoder stack on `ids` (`[batch, q_len]`, positions continuing the cache) and
    /// return its output after the final layer norm, `[batch, q_len, d_model]`. Appends to the cache.
    /// `decoder_mask`: optional `[batch, past_len + q_len]` padding mask of decoder positions.
    pub fn decode(&self, cache: &mut DecoderCache<B>, ids: &[u32], q_len: usize, decoder_mask: Option<&[u32]>) -> Result<B::Tensor> {
        self.decode_with(cache, ids, q_len, decoder_mask, None)
    }

    /// [`Self::decode`], recording hidden states / self- and cross-attentions of the new positions into `rec`.
    pub fn decode_with(
        &self,
        cache: &mut DecoderCache<B>,
        ids: &[u32],
        q_len: usize,
        decoder_mask: Option<&[u32]>,
        mut rec: Option<(&mut StackOutputs, OutputFlags)>,
    ) -> Result<B::Tensor> {
        let dec = self.decoder_stack()?;
        let b = cache.batch;
        if q_len == 0 || ids.len() != b * q_len {
            return Err(T5Error::BadInput(format!("{} decoder ids for batch {b} × {q_len} positions", ids.len())));
        }
        self.check_ids(ids)?;
        let kv_len = cache.past_len + q_len;
        if let Some(m) = decoder_mask {
            if m.len() != b * kv_len {
                return Err(T5Error::BadInput(format!("decoder_attention_mask has {} values, expected {}", m.len(), b * kv_len)));
            }
        }
        let be = &self.backend;
        let static_cap = cache.capacity(be);
        if let Some(cap) = static_cap {
            if kv_len > cap {
                return Err(T5Error::BadInput(format!("the static cache holds {cap} positions, {kv_len} needed")));
            }
        }
        let mut x = be.embedding(&self.shared, ids, &[b, q_len]);
        let bias = be.upload(compute_bias(&dec.relative_bias, q_len, kv_len, cache.past_len, false, self.config.relative_attention_max_distance));
        let self_mask = AttentionMask { key_mask: decoder_mask, causal_offset: Some(cache.past_len) };
        let cross_mask = AttentionMask { key_mask: Some(&cache.encoder_mask), causal_offset: None };
        let mut stream_half = true;
        for (li, block) in dec.blocks.iter().enumerate() {
            if let Some((r, f)) = rec.as_mut() {
                if f.hidden_states {
                    r.hidden_states.push(be.download(&x));
                }
            }
            // self-attention over the cache plus the new positions
            let h = self.norm(&x, &block.self_norm);
            let a = &block.self_attn;
            let (q, k_new, v_new) = (self.lin(&h, &a.q), self.lin(&h, &a.k), self.lin(&h, &a.v));
            let (k, v) = match cache.self_kv[li].take() {
                // preallocated static cache: write the new rows in place
                Some((mut k, mut v)) if static_cap.is_some() => {
                    be.write_seq(&mut k, &k_new, cache.past_len);
                    be.write_seq(&mut v, &v_new, cache.past_len);
                    (k, v)
                }
                Some((k, v)) => (be.append_seq(k, &k_new), be.append_seq(v, &v_new)),
                None => (k_new, v_new),
            };
            let probs = rec.as_mut().filter(|(_, f)| f.attentions).map(|(r, _)| &mut r.attentions);
            let mut ctx = self.attend(&q, &k, &v, Some(&bias), self_mask, self.attention_shape(b, q_len, kv_len), probs);
            cache.self_kv[li] = Some((k, v));
            self.rh(&mut ctx);
            self.attn_residual(&mut x, &self.lin(&ctx, &a.o), stream_half);
            // cross-attention to the encoder output (no position bias, encoder padding mask)
            let (norm, ca) = block.cross.as_ref().expect("decoder block has cross-attention");
            let h = self.norm(&x, norm);
            let q = self.lin(&h, &ca.q);
            let (ck, cv) = &cache.cross_kv[li];
            let probs = rec.as_mut().filter(|(_, f)| f.attentions).map(|(r, _)| &mut r.cross_attentions);
            let mut ctx = self.attend(&q, ck, cv, None, cross_mask, self.attention_shape(b, q_len, cache.encoder_len), probs);
            self.rh(&mut ctx);
            self.attn_residual(&mut x, &self.lin(&ctx, &ca.o), stream_half);
            // feed-forward
            let h = self.norm(&x, &block.ff_norm);
            stream_half = self.ff_residual(&mut x, &self.feed_forward(&block.ff, &h), stream_half);
        }
        cache.past_len = kv_len;
        let out = self.norm(&x, &dec.final_norm);
        if let Some((r, f)) = rec {
            if f.hidden_states {
                r.hidden_states.push(be.download(&out));
            }
        }
        Ok(out)
    }
}
