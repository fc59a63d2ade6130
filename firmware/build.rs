//! Puts `memory.x` where the linker finds it and, for the device only, links with
//! cortex-m-rt's `link.x` and defmt's `defmt.x` (the host build of the library and its
//! tests must not see them).
//!
//! When `RINGNN_EXPORT` names a model exported by the host (`ringnn_host::export`, made by
//! `cargo run --release -p ringnn-host --example export_model -- FILE`), it is copied to
//! `OUT_DIR/model.rs` and the `ringnn_model` cfg is set: the firmware then runs on-device
//! inference on it. A relative path is taken from this package's directory. Without the
//! variable the firmware builds without inference and says so in its log; a variable
//! naming a missing file is an error, so that a test run cannot silently skip inference.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RINGNN_EXPORT");
    println!("cargo::rustc-check-cfg=cfg(ringnn_model)");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    if let Some(path) = env::var_os("RINGNN_EXPORT").filter(|p| !p.is_empty()) {
        let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
        let path = manifest.join(path);
        println!("cargo:rerun-if-changed={}", path.display());
        let src = fs::read(&path).unwrap_or_else(|e| {
            panic!("RINGNN_EXPORT={}: {e}", path.display());
        });
        fs::write(out.join("model.rs"), src).expect("OUT_DIR is writable");
        println!("cargo:rustc-cfg=ringnn_model");
    }
}
