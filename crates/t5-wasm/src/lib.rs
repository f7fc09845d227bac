//! wasm-bindgen bindings (filled in below)
