//! Generation on top of the model: encode once, then one cached decoder step per token.
//! Greedy search here (beam search and sampling come later behind the same entry point).

use crate::backend::Backend;
use crate::config::GenerationConfig;
use crate::error::{Result, T5Error};
use crate::model::{Batch, T5};

/// What the step callback is told after each generated position.
pub struct Step<'a> {
    /// Index of the generated position (0 = first token after the decoder start).
    pub index: usize,
    /// The new token of each batch row (`pad_token_id` for finished rows).
    pub tokens: &'a [u32],
}

/// Greedy decoding as transformers' `generate(do_sample=False, num_beams=1)`: each row starts with
/// `decoder_start_token_id`, takes the argmax each step, gets `pad_token_id` after its EOS, and the
/// loop stops when every row has finished or the token budget is spent. `min_new_tokens` /
/// `min_length` suppress EOS as transformers' min-length processors do. Returns each row's ids
/// including the start token, padded to a common length with `pad_token_id`.
///
/// `on_step` is called after every step; returning `false` stops generation early (abort).
pub fn greedy<B: Backend>(
    model: &T5<B>,
    input: &Batch,
    gen: &GenerationConfig,
    mut on_step: impl FnMut(Step<'_>) -> bool,
) -> Result<Vec<Vec<u32>>> {
    if gen.num_beams > 1 || gen.do_sample {
        return Err(T5Error::BadInput("only greedy search (num_beams = 1, do_sample = false) is implemented".into()));
    }
    let be = model.backend();
    let b = input.batch;
    let budget = gen.new_tokens_budget();
    let min_new = gen.min_new_tokens.unwrap_or(0).max(gen.min_length.saturating_sub(1));
    let enc = model.encode(input)?;
    let mut cache = model.start_decoding(&enc, &input.mask)?;
    drop(enc);
    let mut seqs: Vec<Vec<u32>> = vec![vec![gen.decoder_start_token_id]; b];
    let mut finished = vec![false; b];
    let mut current = vec![gen.decoder_start_token_id; b];
    let vocab = model.config.vocab_size;
    for index in 0..budget {
        let hidden = model.decode(&mut cache, &current, 1, None)?;
        let logits = model.lm_logits(&hidden)?;
        let next: Vec<u32> = if index < min_new && !gen.eos_token_id.is_empty() {
            // suppress EOS: set its logits to -inf before the argmax (host side; rare path)
            let mut host = be.download(&logits);
            for r in 0..b {
                for &e in &gen.eos_token_id {
                    if (e as usize) < vocab {
                        host.data[r * vocab + e as usize] = f32::NEG_INFINITY;
                    }
                }
            }
            be.argmax_rows(&be.upload(host))
        } else {
            be.argmax_rows(&logits)
        };
        for r in 0..b {
            let tok = if finished[r] { gen.pad_token_id } else { next[r] };
            seqs[r].push(tok);
            current[r] = tok;
            if gen.eos_token_id.contains(&tok) {
                finished[r] = true;
            }
        }
        let go_on = on_step(Step { index, tokens: &current });
        if finished.iter().all(|&f| f) || !go_on {
            break;
        }
    }
    Ok(seqs)
}
