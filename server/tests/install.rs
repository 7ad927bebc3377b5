//! The systemd units in contrib/systemd pass `systemd-analyze verify` (where systemd-analyze
//! exists; elsewhere the test says it skipped, and why).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// Verifies `unit` (a file of contrib/systemd) as the unit named `as_name`, with ExecStart
/// pointed at the binary this build made (verify checks that the command exists). Fails on a
/// non-zero exit and on any warning about the unit (an unknown or misspelt key is only a
/// warning to systemd).
fn verify(unit: &str, as_name: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/systemd")
        .join(unit);
    let text = std::fs::read_to_string(&src).unwrap();
    assert!(
        text.contains("ExecStart=/usr/local/bin/confab-server "),
        "{unit}"
    );
    let text = text.replace(
        "/usr/local/bin/confab-server",
        env!("CARGO_BIN_EXE_confab-server"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(as_name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{unit}: {said}");
    let about_us: Vec<&str> = said.lines().filter(|l| l.contains(as_name)).collect();
    assert!(about_us.is_empty(), "{unit}: {about_us:?}");
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let found = Command::new("systemd-analyze").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: systemd-analyze is not installed here (apt-get install systemd)");
        return;
    }
    verify("confab-server.service", "confab-server.service");
    verify("confab-server@.service", "confab-server@1.service");
    // The snippets the unit relies on are there and name its user.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
    let users = std::fs::read_to_string(dir.join("confab.sysusers")).unwrap();
    assert!(users.lines().any(|l| l.starts_with("u confab ")));
    let tmp = std::fs::read_to_string(dir.join("confab.tmpfiles")).unwrap();
    assert!(
        tmp.lines()
            .any(|l| l.starts_with("d /var/lib/confab 0700 confab confab"))
    );
}
