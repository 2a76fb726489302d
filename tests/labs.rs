//! Every lab in labs/ passes through the library runner, and the
//! `switchyard lab` command line runs them, reports verdicts and points at
//! mistakes in lab files with file:line.

use std::path::{Path, PathBuf};
use std::process::Command;
use switchyard_sim::lab::{Lab, RunOptions};

fn labs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn switchyard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn scratch_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("switchyard-lab-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_lab_passes_through_the_library_runner() {
    let files = labs();
    assert!(files.len() >= 5, "labs/ holds the teaching labs: {files:?}");
    for file in files {
        let lab = Lab::from_file(&file).unwrap_or_else(|e| panic!("{e}"));
        let (report, _) = lab.run(&RunOptions::default()).unwrap();
        let failed: Vec<String> = report
            .steps
            .iter()
            .filter(|s| !s.passed)
            .map(|s| {
                format!(
                    "line {}: {}: expected {}, observed {}",
                    s.line, s.step, s.expected, s.observed
                )
            })
            .collect();
        assert!(report.passed, "{}: {failed:#?}", file.display());
    }
}

#[test]
fn every_lab_has_a_readme_paragraph() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/README.md"))
            .unwrap();
    for file in labs() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            readme.contains(&name),
            "labs/README.md says nothing about {name}"
        );
    }
}

#[test]
fn lab_run_exits_zero_and_prints_the_verdict_and_digest() {
    let out = switchyard(&["lab", "run", "labs/one-network.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    assert!(stdout.contains("digest: "), "{stdout}");
    assert!(stdout.contains("a pings b"), "{stdout}");
}

#[test]
fn lab_run_with_explain_says_why_each_frame_went_where_it_went() {
    let out = switchyard(&["lab", "run", "labs/one-network.toml", "--explain"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dst is broadcast -> flooded"), "{stdout}");
    assert!(stdout.contains("-> unicast to"), "{stdout}");
}

#[test]
fn lab_run_writes_pcaps_and_json() {
    let dir = std::env::temp_dir().join(format!("switchyard-lab-pcap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = switchyard(&[
        "lab",
        "run",
        "labs/dns.toml",
        "--pcap",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true);
    assert!(dir.join("web-lo.pcap").exists());
    assert!(dir.join("h1.pcap").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_expectation_exits_one() {
    let lab = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/one-network.toml"),
    )
    .unwrap()
    .replace("count = 2", "count = 2\nexpect = \"fail\"");
    let path = scratch_file("wrong.toml", &lab);
    let out = switchyard(&["lab", "run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: FAIL"));
}

#[test]
fn an_unknown_key_is_reported_with_file_line_and_a_suggestion() {
    let path = scratch_file(
        "typo.toml",
        "[[host]]\nname = \"h1\"\n\n[[network]]\nname = \"n\"\nsubnett = \"10.0.0.0/24\"\n",
    );
    let out = switchyard(&["lab", "run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:6:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `subnet`"), "{stderr}");
}

#[test]
fn a_container_on_a_missing_network_points_at_its_line() {
    let text = "[[host]]\nname = \"h1\"\n\n[[network]]\nname = \"front\"\n\n[[container]]\nname = \"a\"\nnetworks = [\"frnt\"]\n";
    let err = Lab::parse("bad.toml", text).unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:9:"), "{err}");
    assert!(err.contains("did you mean \"front\""), "{err}");
}

#[test]
fn a_bad_cidr_says_what_to_write() {
    let text = "[[host]]\nname = \"h1\"\n[[network]]\nname = \"front\"\nsubnet = \"10.0.0.0/33\"\n";
    let err = Lab::parse("cidr.toml", text).unwrap_err().to_string();
    assert!(err.starts_with("cidr.toml:5:10:"), "{err}");
    assert!(err.contains("10.0.1.0/24"), "{err}");
}

#[test]
fn cabled_networks_must_not_collide() {
    let text = r#"
[[host]]
name = "h1"
[[host]]
name = "h2"
[[network]]
name = "front"
hosts = ["h1", "h2"]
subnet = "10.0.0.0/24"
[[cable]]
name = "trunk"
hosts = ["h1", "h2"]
network = "front"
"#;
    let err = Lab::parse("cable.toml", text).unwrap_err().to_string();
    assert!(err.starts_with("cable.toml:13:"), "{err}");
    assert!(err.contains("disjoint ip_range"), "{err}");
}

#[test]
fn lab_show_prints_the_mac_table_and_arp_cache() {
    let out = switchyard(&[
        "lab",
        "show",
        "labs/one-network.toml",
        "--at",
        "2s",
        "mac",
        "h1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("a/eth0") && stdout.contains("b/eth0"),
        "{stdout}"
    );
    let out = switchyard(&[
        "lab",
        "show",
        "labs/one-network.toml",
        "--at",
        "2s",
        "arp",
        "a",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("10.0.1.3"), "{stdout}");
    let out = switchyard(&[
        "lab",
        "show",
        "labs/one-network.toml",
        "--at",
        "0.5s",
        "mac",
        "h1",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(empty)"),
        "nothing learned before traffic"
    );
}

#[test]
fn lab_check_finds_a_lab_deterministic_over_several_seeds() {
    let out = switchyard(&["lab", "check", "labs/partition-heal.toml", "--seeds", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("verdict: deterministic"), "{stdout}");
}
