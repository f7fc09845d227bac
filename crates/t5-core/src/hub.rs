//! Reading a checkpoint directory in the Hub's file layout from the local file system (native
//! builds: tests, benchmarks, tools). The WASM build gets the same files' bytes from JavaScript.

use crate::config::{GenerationConfig, T5Config};
use crate::error::{Result, T5Error};
use crate::weights::{shard_files_from_index, WeightStore};
use std::path::Path;

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| T5Error::MissingFile(format!("{}: {e}", path.display())))
}

fn read_string(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?).map_err(|e| T5Error::BadConfig(format!("{}: {e}", path.display())))
}

/// `config.json`, `generation_config.json` (defaults from the config when absent) and the weights:
/// `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<(T5Config, GenerationConfig, WeightStore)> {
    let dir = dir.as_ref();
    let config = T5Config::from_json(&read_string(&dir.join("config.json"))?)?;
    let gen_path = dir.join("generation_config.json");
    let generation = if gen_path.exists() {
        GenerationConfig::from_json(&read_string(&gen_path)?, &config)?
    } else {
        GenerationConfig::from_model_config(&config)
    };
    let files = weight_files(dir)?;
    let mut store = WeightStore::new();
    for f in files {
        check_shard_name(&f)?;
        store.add_file(&f, read(&dir.join(&f))?)?;
    }
    Ok((config, generation, store))
}

/// The weight files of a checkpoint directory, in the order transformers prefers them:
/// `model.safetensors`, the shards of `model.safetensors.index.json`, `pytorch_model.bin`, the
/// shards of `pytorch_model.bin.index.json` (older Hub repos).
pub fn weight_files(dir: impl AsRef<Path>) -> Result<Vec<String>> {
    let dir = dir.as_ref();
    for (single, index) in [("model.safetensors", "model.safetensors.index.json"), ("pytorch_model.bin", "pytorch_model.bin.index.json")] {
        if dir.join(single).exists() {
            return Ok(vec![single.to_string()]);
        }
        let index = dir.join(index);
        if index.exists() {
            return shard_files_from_index(&read_string(&index)?);
        }
    }
    Err(T5Error::MissingFile(format!(
        "{}: neither model.safetensors nor model.safetensors.index.json, nor pytorch_model.bin or pytorch_model.bin.index.json",
        dir.display()
    )))
}

/// A shard named by an index must be a plain file name next to it.
fn check_shard_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\\') {
        return Err(T5Error::BadWeights { file: None, msg: format!("the weights index names {name:?}, not a file next to it") });
    }
    Ok(())
}
