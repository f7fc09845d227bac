//! Generation against transformers' `generate` on the committed fixtures that
//! `scripts/make_generation_fixtures.py` made (test/fixtures/oracle/generation/<model>.json): greedy
//! and beam search ids identical (batched and each row alone, growing and static cache), beam
//! `sequences_scores` within 1e-4 + 4 × their fp64 − fp32 spread; the task preset merged from
//! `task_specific_params`; sampling reproducible by seed (own PRNG, not torch's stream), top_k = 1
//! equal to greedy, and sample frequencies that follow the softmax; abort through the callback.

use serde_json::Value;
mod common;

use common::{batch, fixtures, read_json, rows};
use t5_core::config::GenerationConfig;
use t5_core::backend::Backend;
use t5_core::generate::{generate, GenerateOutput, Generation, Need, Reduced};
use t5_core::hub::load_dir;
use t5_core::{Batch, Cpu, ModelKind, T5Config, T5Error, T5};

const MODELS: [&str; 2] = ["tiny-t5", "tiny-t5-v1_1"];

fn oracle(name: &str) -> Value {
    read_json(fixtures().join("oracle/generation").join(format!("{name}.json")))
}

fn load(name: &str) -> (T5<Cpu>, GenerationConfig) {
    let (cfg, gen, store) = load_dir(fixtures().join(name)).unwrap();
    (T5::load(cfg, &store, ModelKind::ConditionalGeneration, Cpu).unwrap(), gen)
}

fn single(o: &Value, r: usize) -> Batch {
    let ids = &rows(&o["input_ids"])[r];
    let n = rows(&o["attention_mask"])[r].iter().filter(|&&m| m == 1).count();
    Batch::new(ids[..n].to_vec(), None, 1, n).unwrap()
}

/// The model's generation config with the case's kwargs over it (the preset case: the task params of the
/// config, merged as transformers' pipelines did).
fn case_config(model: &T5<Cpu>, base: &GenerationConfig, o: &Value, case: &Value) -> GenerationConfig {
    let mut g = base.clone();
    if case["name"] == "preset" {
        let mut cfg: T5Config = model.config.clone();
        cfg.task_specific_params = Some(o["task_specific_params"].clone());
        assert!(g.apply_task_params(&cfg, "summarization").unwrap());
        assert_eq!((g.num_beams, g.length_penalty, g.no_repeat_ngram_size, g.min_length, g.max_length), (4, 2.0, 3, 30, Some(200)));
    } else {
        g.apply_json(&case["kwargs"]).unwrap();
    }
    g
}

fn check_scores(what: &str, ours: &GenerateOutput, case: &Value, key: &str) {
    let Some(theirs) = case.get(key) else { return };
    let theirs: Vec<f64> = theirs.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let ours = ours.sequences_scores.as_ref().expect("beam search returns sequences_scores");
    let tol = 1e-4 + 4.0 * case["sequences_scores_fp64_diff"].as_f64().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{what}: number of scores");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((*a as f64 - b).abs() <= tol, "{what}: score {i}: ours {a}, transformers {b} (tolerance {tol:e})");
    }
}

fn check_model(name: &str, static_cache: bool) {
    let o = oracle(name);
    let (model, base) = load(name);
    let input = batch(&o);
    let cases = o["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "{name}: {} cases", cases.len());
    for case in cases {
        let cname = case["name"].as_str().unwrap();
        let mut g = case_config(&model, &base, &o, case);
        if static_cache {
            g.cache_implementation = Some("static".into());
        }
        let what = format!("{name} {cname}{}", if static_cache { " (static cache)" } else { "" });
        let out = generate(&model, &input, &g, |_| true).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(out.sequences, rows(&case["sequences"]), "{what}: batched ids");
        check_scores(&what, &out, case, "sequences_scores");
        if static_cache {
            continue; // batched only: the rows alone are covered by the growing-cache tests
        }
        for (r, want) in case["sequences_single"].as_array().unwrap().iter().enumerate() {
            let out = generate(&model, &single(&o, r), &g, |_| true).unwrap();
            assert_eq!(out.sequences, rows(want), "{what}: row {r} alone");
            if let Some(s) = case.get("sequences_scores_single") {
                let c = serde_json::json!({"s": s[r], "sequences_scores_fp64_diff": case["sequences_scores_fp64_diff"]});
                check_scores(&format!("{what} row {r}"), &out, &c, "s");
            }
        }
    }
}

#[test]
fn tiny_t5_matches_transformers() {
    check_model("tiny-t5", false);
}

#[test]
fn tiny_t5_v1_1_matches_transformers() {
    check_model("tiny-t5-v1_1", false);
}

#[test]
fn static_cache_gives_the_same_ids() {
    for name in MODELS {
        check_model(name, true);
    }
}

/// `generate` with each step's logits reduced to each row's top k (and the ids a processor touches) first, as on
/// a GPU (`Backend::top_k_rows`, host reduction here); also how many steps read whole rows (top-p: the steps
/// whose candidates did not decide the cutoff) of how many steps.
fn generate_reduced(model: &T5<Cpu>, input: &Batch, g: &GenerationConfig) -> (GenerateOutput, usize, usize) {
    let mut run = Generation::with_reduction(model, input, g, true).unwrap();
    let (mut whole, mut steps) = (0, 0);
    while let Some(need) = run.need(model).unwrap() {
        steps += 1;
        let reduced = match need {
            Need::Argmax { logits, suppress } => Reduced::Ids(Cpu.argmax_rows(&logits, &suppress)),
            Need::TopK { logits, k, suppress, gather } => Reduced::TopK(Cpu.top_k_rows(&logits, k, &suppress, &gather)),
            Need::TopP { logits, check, suppress, gather } => {
                let t = Cpu.top_k_rows(&logits, check.k(), &suppress, &gather);
                if check.decide(&t).is_some() {
                    Reduced::TopK(t)
                } else {
                    whole += 1;
                    Reduced::Full(logits.data)
                }
            }
            Need::Full(logits) => {
                whole += 1;
                Reduced::Full(logits.data)
            }
        };
        run.advance(model, reduced).unwrap();
    }
    (run.finish(), whole, steps)
}

#[test]
fn device_top_k_reduction_gives_the_same_generations() {
    // every oracle case (beam search reads each row's top 2·num_beams and log-sum-exp; greedy the argmax; with
    // repetition penalty / n-grams / bad words / forced EOS each row's top 1 + m or 2·num_beams + m and the m ids
    // they touch), top-k sampling and beam sampling: no whole row read, the same ids and scores, bit for bit
    for name in MODELS {
        let o = oracle(name);
        let (model, base) = load(name);
        let input = batch(&o);
        for case in o["cases"].as_array().unwrap() {
            let g = case_config(&model, &base, &o, case);
            let (out, whole, _) = generate_reduced(&model, &input, &g);
            assert_eq!(whole, 0, "{name} {}: whole rows read", case["name"]);
            assert_eq!(out, generate(&model, &input, &g, |_| true).unwrap(), "{name} {}", case["name"]);
            assert_eq!(out.sequences, rows(&case["sequences"]), "{name} {}: transformers' ids", case["name"]);
        }
        for extra in [
            r#"{"do_sample": true, "top_k": 5, "max_new_tokens": 10, "seed": 3}"#,
            r#"{"do_sample": true, "top_k": 20, "top_p": 0.9, "temperature": 0.8, "max_new_tokens": 10, "min_new_tokens": 4, "seed": 4, "num_return_sequences": 2}"#,
            r#"{"num_beams": 3, "max_new_tokens": 8, "min_new_tokens": 5, "num_return_sequences": 2}"#,
            r#"{"do_sample": true, "num_beams": 2, "seed": 5, "max_new_tokens": 6}"#,
            r#"{"do_sample": true, "num_beams": 3, "top_k": 4, "temperature": 1.5, "repetition_penalty": 1.4, "seed": 2, "max_new_tokens": 8, "num_return_sequences": 2}"#,
            r#"{"do_sample": true, "top_k": 8, "repetition_penalty": 0.7, "no_repeat_ngram_size": 2, "bad_words_ids": [[7555], [6636, 8242]], "seed": 6, "max_new_tokens": 10}"#,
            r#"{"repetition_penalty": 0.6, "no_repeat_ngram_size": 1, "max_new_tokens": 10}"#,
            r#"{"num_beams": 2, "repetition_penalty": 0.8, "forced_eos_token_id": 1, "max_new_tokens": 7}"#,
        ] {
            let mut g = base.clone();
            g.apply_json(&serde_json::from_str(extra).unwrap()).unwrap();
            let (out, whole, _) = generate_reduced(&model, &input, &g);
            assert_eq!(whole, 0, "{name} {extra}: whole rows read");
            assert_eq!(out, generate(&model, &input, &g, |_| true).unwrap(), "{name} {extra}");
        }
        // top-p without top-k (sampling, and beam sampling on the log-softmax): each row's top candidates and
        // normaliser decide the cutoff when the distribution is peaked (a low temperature here: these random-weight
        // models are nearly flat), whole rows otherwise; the same ids (and beam scores) either way, bit for bit
        for (extra, decided) in [
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.9, "temperature": 0.02, "max_new_tokens": 10, "seed": 7, "num_return_sequences": 2}"#, true),
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.5, "temperature": 0.05, "max_new_tokens": 10, "seed": 8}"#, true),
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.9, "max_new_tokens": 6, "seed": 9}"#, false),
            (r#"{"do_sample": true, "num_beams": 3, "top_k": 0, "top_p": 0.9, "temperature": 0.02, "max_new_tokens": 10, "seed": 13, "num_return_sequences": 2}"#, true),
            (r#"{"do_sample": true, "num_beams": 2, "top_k": 0, "top_p": 0.6, "temperature": 0.05, "max_new_tokens": 8, "seed": 14}"#, true),
            (r#"{"do_sample": true, "num_beams": 2, "top_k": 0, "top_p": 0.9, "max_new_tokens": 6, "seed": 15}"#, false),
            // with min-length (EOS at -inf for the first 8 of 10 steps, suppressed in the reduction): the same
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.9, "temperature": 0.02, "max_new_tokens": 10, "min_new_tokens": 8, "seed": 16, "num_return_sequences": 2}"#, true),
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.7, "temperature": 0.05, "max_new_tokens": 10, "min_length": 9, "seed": 17}"#, true),
            (r#"{"do_sample": true, "num_beams": 3, "top_k": 0, "top_p": 0.9, "temperature": 0.02, "max_new_tokens": 10, "min_new_tokens": 8, "seed": 18, "num_return_sequences": 2}"#, true),
            (r#"{"do_sample": true, "num_beams": 2, "top_k": 0, "top_p": 0.9, "max_new_tokens": 6, "min_new_tokens": 5, "seed": 19}"#, false),
            // with the edits replayed on the candidates and the gathered touched ids (repetition penalty, n-grams, bad
            // words, forced EOS)
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.9, "temperature": 0.02, "repetition_penalty": 1.3, "max_new_tokens": 10, "seed": 20, "num_return_sequences": 2}"#, true),
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.8, "temperature": 0.05, "repetition_penalty": 0.7, "no_repeat_ngram_size": 2, "bad_words_ids": [[7555], [6636, 8242]], "min_new_tokens": 6, "max_new_tokens": 10, "seed": 21}"#, true),
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.9, "temperature": 0.02, "forced_eos_token_id": 1, "no_repeat_ngram_size": 1, "max_new_tokens": 8, "seed": 22}"#, true),
            (r#"{"do_sample": true, "num_beams": 3, "top_k": 0, "top_p": 0.9, "temperature": 0.02, "no_repeat_ngram_size": 2, "bad_words_ids": [[7555]], "forced_eos_token_id": 1, "min_new_tokens": 4, "max_new_tokens": 8, "seed": 23, "num_return_sequences": 2}"#, true),
            (r#"{"do_sample": true, "top_k": 0, "top_p": 0.9, "repetition_penalty": 1.2, "max_new_tokens": 6, "seed": 24}"#, false),
            // beam sampling with a repetition penalty (it scales the log-softmax, and the device normaliser's error
            // with it: bounded per class of value), with n-grams and forced EOS too
            (r#"{"do_sample": true, "num_beams": 2, "top_k": 0, "top_p": 0.9, "temperature": 0.02, "repetition_penalty": 1.3, "max_new_tokens": 6, "seed": 25}"#, true),
            (r#"{"do_sample": true, "num_beams": 3, "top_k": 0, "top_p": 0.8, "temperature": 0.05, "repetition_penalty": 0.7, "no_repeat_ngram_size": 2, "forced_eos_token_id": 1, "max_new_tokens": 8, "seed": 26, "num_return_sequences": 2}"#, true),
        ] {
            let mut g = base.clone();
            g.apply_json(&serde_json::from_str(extra).unwrap()).unwrap();
            let (out, whole, steps) = generate_reduced(&model, &input, &g);
            eprintln!("{name} {extra}: whole rows read at {whole} of {steps} steps");
            if decided {
                assert!(whole * 2 < steps, "{name} {extra}: {whole} of {steps} steps read whole rows");
            } else {
                assert_eq!(whole, steps, "{name} {extra}: a flat row's cutoff is left to the whole row");
            }
            assert_eq!(out, generate(&model, &input, &g, |_| true).unwrap(), "{name} {extra}");
        }
    }
}

#[test]
fn beam_scores_are_robustly_ordered() {
    // the returned beams of an input must differ in score by far more than the tolerance, or the
    // comparison of ids would rest on rounding
    for name in MODELS {
        let o = oracle(name);
        for case in o["cases"].as_array().unwrap() {
            if let Some(m) = case.get("min_margin").and_then(Value::as_f64) {
                assert!(m > 1e-3, "{name} {}: margin {m}", case["name"]);
            }
            assert_eq!(case["fp64_equal"], true);
        }
    }
}

fn sampling(extra: &str) -> GenerationConfig {
    let (model, base) = load("tiny-t5");
    drop(model);
    let mut g = base;
    g.apply_json(&serde_json::from_str(extra).unwrap()).unwrap();
    g
}

#[test]
fn sampling_is_reproducible_by_seed() {
    let o = oracle("tiny-t5");
    let (model, _) = load("tiny-t5");
    let input = batch(&o);
    let g = |seed: u64| sampling(&format!(r#"{{"do_sample": true, "max_new_tokens": 10, "top_k": 0, "temperature": 1.5, "seed": {seed}}}"#));
    let a = generate(&model, &input, &g(1), |_| true).unwrap();
    let b = generate(&model, &input, &g(1), |_| true).unwrap();
    let c = generate(&model, &input, &g(2), |_| true).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.sequences, c.sequences);
    // static cache: same draws
    let mut gs = g(1);
    gs.cache_implementation = Some("static".into());
    assert_eq!(generate(&model, &input, &gs, |_| true).unwrap(), a);
    // num_return_sequences: rows of one input together
    let mut g3 = g(3);
    g3.num_return_sequences = 3;
    let out = generate(&model, &input, &g3, |_| true).unwrap();
    assert_eq!(out.sequences.len(), 9);
}

#[test]
fn top_k_1_equals_greedy() {
    let o = oracle("tiny-t5");
    let (model, base) = load("tiny-t5");
    let input = batch(&o);
    let mut greedy = base.clone();
    greedy.max_new_tokens = Some(12);
    let want = generate(&model, &input, &greedy, |_| true).unwrap();
    for seed in 0..3 {
        let g = sampling(&format!(r#"{{"do_sample": true, "top_k": 1, "max_new_tokens": 12, "seed": {seed}, "temperature": 0.7}}"#));
        assert_eq!(generate(&model, &input, &g, |_| true).unwrap().sequences, want.sequences);
    }
    // and beam sampling with top_k 1 and one beam's worth of candidates is still reproducible
    let g = sampling(r#"{"do_sample": true, "num_beams": 2, "max_new_tokens": 6, "seed": 5}"#);
    let a = generate(&model, &input, &g, |_| true).unwrap();
    assert_eq!(a, generate(&model, &input, &g, |_| true).unwrap());
}

#[test]
fn sample_frequencies_follow_the_softmax() {
    // first generated token of one input, drawn 4000 times (num_return_sequences) with temperature
    // 3 and top_k 4: frequencies against softmax(logits / 3) renormalised over the top 4
    let o = oracle("tiny-t5");
    let (model, base) = load("tiny-t5");
    let input = single(&o, 0);
    let out = model.forward(&input, Some(&[base.decoder_start_token_id]), None, None).unwrap();
    let logits = out.logits.unwrap().data;
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].partial_cmp(&logits[a]).unwrap());
    let top: Vec<usize> = idx[..4].to_vec();
    let w: Vec<f64> = top.iter().map(|&i| ((logits[i] - logits[top[0]]) as f64 / 3.0).exp()).collect();
    let total: f64 = w.iter().sum();
    let n = 4000;
    let g = sampling(&format!(r#"{{"do_sample": true, "top_k": 4, "temperature": 3.0, "max_new_tokens": 1, "num_return_sequences": {n}, "seed": 11}}"#));
    let seqs = generate(&model, &input, &g, |_| true).unwrap().sequences;
    assert_eq!(seqs.len(), n);
    for (j, &t) in top.iter().enumerate() {
        let f = seqs.iter().filter(|s| s[1] as usize == t).count() as f64 / n as f64;
        let p = w[j] / total;
        assert!((f - p).abs() < 0.03, "token {t}: frequency {f}, probability {p}");
    }
    assert!(seqs.iter().all(|s| top.contains(&(s[1] as usize))), "only top-k tokens are drawn");
}

#[test]
fn callback_abort_and_streamed_tokens() {
    let o = oracle("tiny-t5");
    let (model, base) = load("tiny-t5");
    let input = batch(&o);
    let mut g = base.clone();
    g.max_new_tokens = Some(12);
    let full = generate(&model, &input, &g, |_| true).unwrap();
    let mut streamed: Vec<Vec<u32>> = vec![vec![]; 3];
    let out = generate(&model, &input, &g, |s| {
        for (r, &t) in s.tokens.iter().enumerate() {
            streamed[r].push(t);
        }
        s.index < 3
    })
    .unwrap();
    assert_eq!(out.sequences.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 5, 5]);
    for r in 0..3 {
        assert_eq!(out.sequences[r], full.sequences[r][..5]);
        assert_eq!(streamed[r], full.sequences[r][1..5]);
    }
    // beam search stops too
    g.num_beams = 3;
    let mut steps = 0;
    generate(&model, &input, &g, |_| {
        steps += 1;
        steps < 2
    })
    .unwrap();
    assert_eq!(steps, 2);
}

#[test]
fn bad_generation_configs_are_typed_errors() {
    let o = oracle("tiny-t5");
    let (model, base) = load("tiny-t5");
    let input = batch(&o);
    let bad = [
        r#"{"num_beams": 0}"#,
        r#"{"num_beams": 2, "num_return_sequences": 3}"#,
        r#"{"num_return_sequences": 2}"#,
        r#"{"do_sample": true, "temperature": 0}"#,
        r#"{"do_sample": true, "top_p": 1.5}"#,
        r#"{"repetition_penalty": 0}"#,
        r#"{"bad_words_ids": []}"#,
        r#"{"bad_words_ids": [[]]}"#,
        r#"{"cache_implementation": "sliding"}"#,
    ];
    for b in bad {
        let mut g = base.clone();
        g.apply_json(&serde_json::from_str(b).unwrap()).unwrap();
        let e = generate(&model, &input, &g, |_| true).unwrap_err();
        assert!(matches!(e, T5Error::BadConfig(_)), "{b}: {e:?}");
    }
    let mut g = base.clone();
    g.apply_json(&serde_json::from_str(r#"{"bad_words_ids": [[99999]]}"#).unwrap()).unwrap();
    assert!(matches!(generate(&model, &input, &g, |_| true).unwrap_err(), T5Error::BadInput(_)));
    for b in [r#"{"early_stopping": "sometimes"}"#, r#"{"bad_words_ids": [1, 2]}"#, r#"{"temperature": "hot"}"#, r#"{"forced_eos_token_id": -1}"#] {
        let mut g = base.clone();
        assert!(matches!(g.apply_json(&serde_json::from_str(b).unwrap()), Err(T5Error::BadConfig(_))), "{b}");
    }
}

#[test]
fn default_length_is_twenty_new_tokens() {
    let (model, base) = load("tiny-t5");
    assert_eq!(base.max_length, None);
    assert_eq!(base.new_tokens_budget(), 20);
    let mut g = base.clone();
    g.max_length = Some(20);
    assert_eq!(g.new_tokens_budget(), 19);
    g.max_new_tokens = Some(5);
    assert_eq!(g.new_tokens_budget(), 5);
    drop(model);
}
