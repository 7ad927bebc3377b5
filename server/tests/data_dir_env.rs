//! Which variable names the server's data directory: `CONFAB_SERVER_DATA_DIR`, or for one more
//! release the client's `CONFAB_DATA_DIR` (the quick start's shells set it for the client).
//! Checked on the real binary through `fingerprint --tls-self-signed`, which makes its pair in
//! the data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn fingerprint_with(env: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab-server"));
    cmd.args(["--tls-self-signed", "fingerprint"])
        .env_remove("CONFAB_DATA_DIR")
        .env_remove("CONFAB_SERVER_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_server_reads_confab_server_data_dir_and_still_the_old_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (new, old) = (dir.path().join("server"), dir.path().join("client"));

    let out = fingerprint_with(&[("CONFAB_SERVER_DATA_DIR", &new), ("CONFAB_DATA_DIR", &old)]);
    assert!(out.status.success(), "{out:?}");
    assert!(new.join("tls-cert.pem").exists(), "the new variable wins");
    assert!(!old.exists(), "the client's directory is left alone");

    let out = fingerprint_with(&[("CONFAB_DATA_DIR", &old)]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        old.join("tls-cert.pem").exists(),
        "the old variable still works"
    );
}
