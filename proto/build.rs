//! Compiles every `.proto` file under `cadastre/` with protox (a pure-Rust
//! protobuf compiler, so no system `protoc` is needed), generates the prost
//! messages and tonic clients/servers, and writes the encoded file descriptor
//! set to `OUT_DIR` for gRPC server reflection.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs};

use protox::prost::Message as _;

/// The root of the proto tree, relative to `CARGO_MANIFEST_DIR` (the working
/// directory of build scripts). It is also the include path, so imports are
/// written as `import "cadastre/v1/entity.proto";`.
const PROTO_ROOT: &str = "cadastre";

/// The file the encoded descriptor set is written to, inside `OUT_DIR`.
const DESCRIPTOR_FILE: &str = "cadastre_descriptor.bin";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let mut files = Vec::new();
    collect_protos(Path::new(PROTO_ROOT), &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, ["."])?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join(DESCRIPTOR_FILE), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;

    Ok(())
}

/// Appends every `.proto` file under `dir`, recursively, to `out`.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
