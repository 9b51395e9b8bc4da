//! The generated protobuf code in `src/gen/` is committed so normal builds need no protoc.
//! This test regenerates it from `proto/` (with protox, a protobuf compiler in Rust) and fails
//! when the committed code differs. `THREADLINE_UPDATE_PROTO=1 cargo test -p threadline-proto
//! --test codegen` rewrites the committed files.

use std::path::{Path, PathBuf};

const FILES: &[&str] =
    &["opentelemetry/proto/collector/trace/v1/trace_service.proto", "google/rpc/status.proto"];

#[test]
fn generated_code_matches_the_proto_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = root.join("src/gen");
    let fresh = std::env::temp_dir().join(format!("threadline-proto-gen-{}", std::process::id()));
    std::fs::create_dir_all(&fresh).unwrap();

    let fds = protox::compile(FILES, [root.join("proto")]).expect("proto files compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .build_transport(false)
        .codec_path("crate::codec::OtlpCodec")
        .emit_rerun_if_changed(false)
        .out_dir(&fresh)
        .compile_fds(fds)
        .expect("code generation succeeds");

    let update = std::env::var_os("THREADLINE_UPDATE_PROTO").is_some();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&fresh).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        let generated = std::fs::read_to_string(&path).unwrap();
        let target: PathBuf = committed.join(&name);
        let current = std::fs::read_to_string(&target).unwrap_or_default();
        if generated != current {
            if update {
                std::fs::create_dir_all(&committed).unwrap();
                std::fs::write(&target, &generated).unwrap();
            } else {
                stale.push(name.to_string_lossy().into_owned());
            }
        }
    }
    std::fs::remove_dir_all(&fresh).unwrap();
    assert!(
        stale.is_empty(),
        "generated code is stale for {stale:?}: rerun with THREADLINE_UPDATE_PROTO=1"
    );
}
