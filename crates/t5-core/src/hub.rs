//! Reading a checkpoint directory in the Hub's file layout from the local file system (native
//! builds: tests, benchmarks, tools). The WASM build gets the same files' bytes from JavaScript.

use crate::config::{GenerationConfig, T5Config};
use crate::error::{Result, T5Error};
use crate::formats::{shard_files_from_index, WeightStore};
use std::path::Path;

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| T5Error::MissingFile(format!("{}: {e}", path.display())))
}

fn read_string(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?).map_err(|e| T5Error::BadConfig(format!("{}: {e}", path.display())))
}

/// `config.json`, `generation_config.json` (defaults from the config when absent) and the weights:
/// `model.safetensors`, or the shards listed in `model.safetensors.index.json`. A `.gguf` file, or a
/// directory with none of those weight files but a `.gguf` file, is read by [`load_gguf`].
pub fn load_dir(dir: impl AsRef<Path>) -> Result<(T5Config, GenerationConfig, WeightStore)> {
    let dir = dir.as_ref();
    if dir.is_file() || (weight_files(dir).is_err() && !gguf_files(dir).is_empty()) {
        return load_gguf(dir);
    }
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

/// The `.gguf` files of a directory, sorted.
fn gguf_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf"))).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// A T5 GGUF checkpoint ([`crate::gguf`]): `path` is the `.gguf` file, or a directory holding
/// exactly one. Config from the GGUF metadata; a `generation_config.json` next to the file is applied.
pub fn load_gguf(path: impl AsRef<Path>) -> Result<(T5Config, GenerationConfig, WeightStore)> {
    let path = path.as_ref();
    let file = if path.is_dir() {
        match gguf_files(path).as_slice() {
            [one] => one.clone(),
            [] => return Err(T5Error::MissingFile(format!("{}: no .gguf file", path.display()))),
            many => {
                let names: Vec<String> = many.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
                return Err(T5Error::MissingFile(format!("{}: several .gguf files ({}): name one", path.display(), names.join(", "))));
            }
        }
    } else {
        path.to_path_buf()
    };
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (config, mut generation, store) = crate::formats::gguf::load(&name, read(&file)?)?;
    if let Some(gen_path) = file.parent().map(|d| d.join("generation_config.json")).filter(|p| p.exists()) {
        generation = GenerationConfig::from_json(&read_string(&gen_path)?, &config)?;
    }
    Ok((config, generation, store))
}
