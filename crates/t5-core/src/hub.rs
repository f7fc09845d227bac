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
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files = if single.exists() {
        vec!["model.safetensors".to_string()]
    } else if index.exists() {
        shard_files_from_index(&read_string(&index)?)?
    } else {
        return Err(T5Error::MissingFile(format!("{}: neither model.safetensors nor model.safetensors.index.json", dir.display())));
    };
    let mut store = WeightStore::new();
    for f in files {
        store.add_shard(&f, read(&dir.join(&f))?)?;
    }
    Ok((config, generation, store))
}
