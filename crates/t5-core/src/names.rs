//! The one table of a T5's weights: every tensor the model reads, its transformers name, its GGUF
//! name, its shape for a config and whether it is a linear weight (stored in the requested
//! [`crate::dtype::WeightDtype`]). Used by the model loader, the streaming loader's linear-weight
//! test ([`is_linear_weight`]), the memory budget ([`crate::formats::budget`]) and the GGUF name map.
//!
//! transformers numbers the sub-layers of a block: encoder `layer.0` self-attention, `layer.1`
//! feed-forward; decoder `layer.0` self-attention, `layer.1` cross-attention, `layer.2` feed-forward.
//! Only block 0 of each stack holds the relative attention bias. GGUF (gguf-py's `TensorNameMap` for
//! `MODEL_ARCH.T5`) names them `token_embd`, `output`, `{enc,dec}.output_norm`,
//! `{enc,dec}.blk.N.{attn_q,attn_k,attn_v,attn_o,attn_norm,attn_rel_b,cross_attn_*,ffn_norm,ffn_gate,ffn_up,ffn_down}`.

use crate::config::T5Config;

/// Encoder or decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stack {
    Encoder,
    Decoder,
}

impl Stack {
    /// transformers' module name (`encoder` / `decoder`).
    pub fn hf(self) -> &'static str {
        match self {
            Stack::Encoder => "encoder",
            Stack::Decoder => "decoder",
        }
    }
    fn gguf(self) -> &'static str {
        match self {
            Stack::Encoder => "enc",
            Stack::Decoder => "dec",
        }
    }
    /// The sub-layer index of the feed-forward (`layer.1` / `layer.2`).
    fn ff_layer(self) -> usize {
        match self {
            Stack::Encoder => 1,
            Stack::Decoder => 2,
        }
    }
}

/// An attention projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proj {
    Q,
    K,
    V,
    O,
}

impl Proj {
    pub const ALL: [Proj; 4] = [Proj::Q, Proj::K, Proj::V, Proj::O];
    fn name(self) -> &'static str {
        match self {
            Proj::Q => "q",
            Proj::K => "k",
            Proj::V => "v",
            Proj::O => "o",
        }
    }
}

/// A weight of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    SelfNorm,
    SelfAttn(Proj),
    /// the relative attention bias table (block 0 only)
    RelBias,
    /// decoder only
    CrossNorm,
    /// decoder only
    Cross(Proj),
    /// decoder only; never in a transformers T5, named by GGUF's map
    CrossRelBias,
    FfNorm,
    /// the non-gated feed-forward's input projection
    Wi,
    /// the gated feed-forward's gate (activated) and linear input projections
    Wi0,
    Wi1,
    Wo,
}

/// One weight of a T5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weight {
    /// `shared.weight`: the embedding table
    Shared,
    /// `encoder.embed_tokens.weight` / `decoder.embed_tokens.weight`: copies of `shared` some files hold
    EmbedTokens(Stack),
    /// `lm_head.weight` (untied head)
    LmHead,
    FinalNorm(Stack),
    Block(Stack, usize, Part),
}

impl Weight {
    /// transformers' name (without a `transformer.` base-model prefix).
    pub fn hf_name(self) -> String {
        match self {
            Weight::Shared => "shared.weight".into(),
            Weight::EmbedTokens(s) => format!("{}.embed_tokens.weight", s.hf()),
            Weight::LmHead => "lm_head.weight".into(),
            Weight::FinalNorm(s) => format!("{}.final_layer_norm.weight", s.hf()),
            Weight::Block(s, i, part) => {
                let ff = s.ff_layer();
                let tail = match part {
                    Part::SelfNorm => "layer.0.layer_norm".to_string(),
                    Part::SelfAttn(p) => format!("layer.0.SelfAttention.{}", p.name()),
                    Part::RelBias => "layer.0.SelfAttention.relative_attention_bias".to_string(),
                    Part::CrossNorm => "layer.1.layer_norm".to_string(),
                    Part::Cross(p) => format!("layer.1.EncDecAttention.{}", p.name()),
                    Part::CrossRelBias => "layer.1.EncDecAttention.relative_attention_bias".to_string(),
                    Part::FfNorm => format!("layer.{ff}.layer_norm"),
                    Part::Wi => format!("layer.{ff}.DenseReluDense.wi"),
                    Part::Wi0 => format!("layer.{ff}.DenseReluDense.wi_0"),
                    Part::Wi1 => format!("layer.{ff}.DenseReluDense.wi_1"),
                    Part::Wo => format!("layer.{ff}.DenseReluDense.wo"),
                };
                format!("{}.block.{i}.{tail}.weight", s.hf())
            }
        }
    }

    /// llama.cpp's GGUF name (`None` for the embedding copies GGUF does not store).
    pub fn gguf_name(self) -> Option<String> {
        Some(match self {
            Weight::Shared => "token_embd.weight".into(),
            Weight::EmbedTokens(_) => return None,
            Weight::LmHead => "output.weight".into(),
            Weight::FinalNorm(s) => format!("{}.output_norm.weight", s.gguf()),
            Weight::Block(s, i, part) => {
                let tail = match part {
                    Part::SelfNorm => "attn_norm".to_string(),
                    Part::SelfAttn(p) => format!("attn_{}", p.name()),
                    Part::RelBias => "attn_rel_b".to_string(),
                    Part::CrossNorm => "cross_attn_norm".to_string(),
                    Part::Cross(p) => format!("cross_attn_{}", p.name()),
                    Part::CrossRelBias => "cross_attn_rel_b".to_string(),
                    Part::FfNorm => "ffn_norm".to_string(),
                    Part::Wi | Part::Wi1 => "ffn_up".to_string(),
                    Part::Wi0 => "ffn_gate".to_string(),
                    Part::Wo => "ffn_down".to_string(),
                };
                format!("{}.blk.{i}.{tail}.weight", s.gguf())
            }
        })
    }

    /// The weight a transformers name (without prefix) names; `None` for names outside the table.
    pub fn from_hf(name: &str) -> Option<Weight> {
        let base = name.strip_suffix(".weight")?;
        let w = match base {
            "shared" => Weight::Shared,
            "lm_head" => Weight::LmHead,
            "encoder.embed_tokens" => Weight::EmbedTokens(Stack::Encoder),
            "decoder.embed_tokens" => Weight::EmbedTokens(Stack::Decoder),
            "encoder.final_layer_norm" => Weight::FinalNorm(Stack::Encoder),
            "decoder.final_layer_norm" => Weight::FinalNorm(Stack::Decoder),
            _ => {
                let (stack, rest) = split_stack(base, "encoder.block.", "decoder.block.")?;
                let (i, rest) = split_index(rest)?;
                let dec = stack == Stack::Decoder;
                let (layer, rest) = split_index(rest.strip_prefix("layer.")?)?;
                let ff = layer == stack.ff_layer();
                let part = match (layer, rest) {
                    (0, "layer_norm") => Part::SelfNorm,
                    (0, "SelfAttention.relative_attention_bias") => Part::RelBias,
                    (1, "layer_norm") if dec => Part::CrossNorm,
                    (1, "EncDecAttention.relative_attention_bias") if dec => Part::CrossRelBias,
                    (_, "layer_norm") if ff => Part::FfNorm,
                    (_, "DenseReluDense.wi") if ff => Part::Wi,
                    (_, "DenseReluDense.wi_0") if ff => Part::Wi0,
                    (_, "DenseReluDense.wi_1") if ff => Part::Wi1,
                    (_, "DenseReluDense.wo") if ff => Part::Wo,
                    (0, r) => Part::SelfAttn(proj(r.strip_prefix("SelfAttention.")?)?),
                    (1, r) if dec => Part::Cross(proj(r.strip_prefix("EncDecAttention.")?)?),
                    _ => return None,
                };
                Weight::Block(stack, i, part)
            }
        };
        // exact names only (no "+1", "01" block numbers)
        (w.hf_name() == name).then_some(w)
    }

    /// The weight a GGUF tensor name names; `gated`: whether the file's feed-forward is gated
    /// (`ffn_up` is then `wi_1`, else `wi`). `None` for names outside the T5 map.
    pub fn from_gguf(name: &str, gated: bool) -> Option<Weight> {
        let base = name.strip_suffix(".weight")?;
        let w = match base {
            "token_embd" => Weight::Shared,
            "output" => Weight::LmHead,
            "enc.output_norm" => Weight::FinalNorm(Stack::Encoder),
            "dec.output_norm" => Weight::FinalNorm(Stack::Decoder),
            _ => {
                let (stack, rest) = split_stack(base, "enc.blk.", "dec.blk.")?;
                let (i, part) = split_index(rest)?;
                let dec = stack == Stack::Decoder;
                let part = match part {
                    "attn_norm" => Part::SelfNorm,
                    "attn_rel_b" => Part::RelBias,
                    "cross_attn_norm" if dec => Part::CrossNorm,
                    "cross_attn_rel_b" if dec => Part::CrossRelBias,
                    "ffn_norm" => Part::FfNorm,
                    "ffn_gate" => Part::Wi0,
                    "ffn_up" if gated => Part::Wi1,
                    "ffn_up" => Part::Wi,
                    "ffn_down" => Part::Wo,
                    p => match (p.strip_prefix("attn_"), p.strip_prefix("cross_attn_")) {
                        (Some(x), _) => Part::SelfAttn(proj(x)?),
                        (_, Some(x)) if dec => Part::Cross(proj(x)?),
                        _ => return None,
                    },
                };
                Weight::Block(stack, i, part)
            }
        };
        (w.gguf_name().as_deref() == Some(name)).then_some(w)
    }

    /// Whether the model stores this weight in the requested storage form (linear weights and the
    /// embedding table); norms and the position bias tables stay f32.
    pub fn is_linear(self) -> bool {
        match self {
            Weight::Shared | Weight::EmbedTokens(_) | Weight::LmHead => true,
            Weight::FinalNorm(_) => false,
            Weight::Block(_, _, part) => matches!(part, Part::SelfAttn(_) | Part::Cross(_) | Part::Wi | Part::Wi0 | Part::Wi1 | Part::Wo),
        }
    }

    /// transformers' shape (`[out, in]` for linear weights) for `cfg`.
    pub fn shape(self, cfg: &T5Config) -> Vec<usize> {
        let (d, inner, ff) = (cfg.d_model, cfg.inner_dim(), cfg.d_ff);
        match self {
            Weight::Shared | Weight::EmbedTokens(_) | Weight::LmHead => vec![cfg.vocab_size, d],
            Weight::FinalNorm(_) => vec![d],
            Weight::Block(_, _, part) => match part {
                Part::SelfNorm | Part::CrossNorm | Part::FfNorm => vec![d],
                Part::SelfAttn(Proj::O) | Part::Cross(Proj::O) => vec![d, inner],
                Part::SelfAttn(_) | Part::Cross(_) => vec![inner, d],
                Part::RelBias | Part::CrossRelBias => vec![cfg.relative_attention_num_buckets, cfg.num_heads],
                Part::Wi | Part::Wi0 | Part::Wi1 => vec![ff, d],
                Part::Wo => vec![d, ff],
            },
        }
    }
}

fn split_stack<'a>(s: &'a str, enc: &str, dec: &str) -> Option<(Stack, &'a str)> {
    if let Some(r) = s.strip_prefix(enc) {
        Some((Stack::Encoder, r))
    } else {
        s.strip_prefix(dec).map(|r| (Stack::Decoder, r))
    }
}

/// `"12.rest"` → `(12, "rest")`.
fn split_index(s: &str) -> Option<(usize, &str)> {
    let (n, rest) = s.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, rest))
}

fn proj(s: &str) -> Option<Proj> {
    Proj::ALL.into_iter().find(|p| p.name() == s)
}

/// The weights of block `i` of a stack, in load order (`gated`: the feed-forward is gated).
pub fn block_weights(stack: Stack, i: usize, gated: bool) -> Vec<Weight> {
    let b = |part| Weight::Block(stack, i, part);
    let mut out = vec![b(Part::SelfNorm)];
    out.extend(Proj::ALL.map(|p| b(Part::SelfAttn(p))));
    if i == 0 {
        out.push(b(Part::RelBias));
    }
    if stack == Stack::Decoder {
        out.push(b(Part::CrossNorm));
        out.extend(Proj::ALL.map(|p| b(Part::Cross(p))));
    }
    out.push(b(Part::FfNorm));
    if gated {
        out.extend([b(Part::Wi0), b(Part::Wi1)]);
    } else {
        out.push(b(Part::Wi));
    }
    out.push(b(Part::Wo));
    out
}

/// Every weight a T5 of this config reads, lazily (a corrupt config's layer count costs nothing
/// until iterated): `shared`, the encoder's blocks and final norm, with `has_decoder` the decoder's,
/// and `lm_head` when `lm_head` (untied head).
pub fn model_weights(cfg: &T5Config, gated: bool, has_decoder: bool, lm_head: bool) -> impl Iterator<Item = Weight> {
    let stack = move |s: Stack, layers: usize| (0..layers).flat_map(move |i| block_weights(s, i, gated)).chain([Weight::FinalNorm(s)]);
    let dec_layers = if has_decoder { cfg.decoder_layers() } else { 0 };
    std::iter::once(Weight::Shared)
        .chain(stack(Stack::Encoder, cfg.num_layers))
        .chain(stack(Stack::Decoder, dec_layers).filter(move |_| has_decoder))
        .chain(Some(Weight::LmHead).filter(|_| has_decoder && lm_head))
}

/// Whether the model loader reads `name` as a linear weight (or the embedding table) converted to
/// the requested storage form. A `transformer.` base-model prefix (sequence / token classification
/// checkpoints) is accepted, except on `lm_head` (those heads have none).
pub fn is_linear_weight(name: &str) -> bool {
    let n = name.strip_prefix("transformer.").unwrap_or(name);
    match Weight::from_hf(n) {
        Some(Weight::LmHead) => name == n,
        Some(Weight::EmbedTokens(Stack::Decoder)) => false,
        Some(w) => w.is_linear(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_both_namings() {
        let cfg = T5Config::from_json(r#"{"d_model": 8, "d_kv": 2, "d_ff": 16, "num_layers": 2, "num_heads": 4, "vocab_size": 10}"#).unwrap();
        for gated in [false, true] {
            let all: Vec<Weight> = model_weights(&cfg, gated, true, true).collect();
            assert_eq!(all.len(), 1 + (2 * 8 + 1 + 1) + (2 * 13 + 1 + 1) + 1 + if gated { 4 } else { 0 });
            for w in all {
                assert_eq!(Weight::from_hf(&w.hf_name()), Some(w), "{}", w.hf_name());
                let g = w.gguf_name().unwrap();
                assert_eq!(Weight::from_gguf(&g, gated), Some(w), "{g}");
            }
        }
        assert_eq!(Weight::from_hf("encoder.block.+1.layer.0.layer_norm.weight"), None);
        assert_eq!(Weight::from_hf("encoder.block.01.layer.0.layer_norm.weight"), None);
        assert_eq!(Weight::from_hf("encoder.block.0.layer.1.EncDecAttention.q.weight"), None);
        assert_eq!(Weight::from_hf("decoder.block.0.layer.1.DenseReluDense.wi.weight"), None);
        assert_eq!(Weight::from_gguf("enc.blk.0.cross_attn_q.weight", true), None);
        assert_eq!(Weight::from_gguf("blk.0.attn_q.weight", true), None);
    }

    #[test]
    fn linear_weights() {
        for (name, linear) in [
            ("shared.weight", true),
            ("encoder.embed_tokens.weight", true),
            ("decoder.embed_tokens.weight", false),
            ("lm_head.weight", true),
            ("transformer.lm_head.weight", false),
            ("transformer.shared.weight", true),
            ("transformer.encoder.block.0.layer.1.DenseReluDense.wo.weight", true),
            ("decoder.block.3.layer.1.EncDecAttention.k.weight", true),
            ("decoder.block.3.layer.2.DenseReluDense.wi_0.weight", true),
            ("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", false),
            ("encoder.block.0.layer.0.layer_norm.weight", false),
            ("encoder.final_layer_norm.weight", false),
            ("classification_head.dense.weight", false),
            ("encoder.block.0.layer.0.SelfAttention.q.weight.qweight", false),
        ] {
            assert_eq!(is_linear_weight(name), linear, "{name}");
        }
    }
}
