//! Tests of the queue store's directory walk and admission.

use super::*;
use std::os::unix::fs::symlink;

#[test]
fn a_queue_directory_that_cannot_be_opened_is_postfix_fatal() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("incoming");
    let mut names = Vec::new();
    assert_eq!(
        walk(&missing, 0, &mut names, None).unwrap_err(),
        format!(
            "scan_dir_push: open directory {}: No such file or directory",
            missing.display()
        )
    );
}

#[test]
fn hash_folders_are_entered_only_when_they_are_folders() {
    let d = tempfile::tempdir().unwrap();
    let deferred = d.path().join("deferred");
    fs::create_dir_all(deferred.join("A")).unwrap();
    fs::write(deferred.join("A").join("ABCDE12345"), b"").unwrap();
    // A link to a folder outside the queue, and a one-letter file.
    let outside = d.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("BCDEF12345"), b"").unwrap();
    symlink(&outside, deferred.join("B")).unwrap();
    fs::write(deferred.join("C"), b"").unwrap();
    let mut names = Vec::new();
    let mut bad = Vec::new();
    walk(&deferred, 1, &mut names, Some(&mut bad)).unwrap();
    assert_eq!(names, ["ABCDE12345"]);
    assert!(bad.is_empty());
}

#[test]
fn names_that_are_not_queue_ids_are_reported_apart() {
    let d = tempfile::tempdir().unwrap();
    let active = d.path().join("active");
    fs::create_dir_all(&active).unwrap();
    for name in ["ABCDE12345", "12345.678", ".hidden"] {
        fs::write(active.join(name), b"").unwrap();
    }
    let mut names = Vec::new();
    let mut bad = Vec::new();
    walk(&active, 0, &mut names, Some(&mut bad)).unwrap();
    bad.sort();
    assert_eq!(names, ["ABCDE12345"]);
    assert_eq!(bad, [".hidden", "12345.678"]);
}

#[test]
fn only_a_swapped_entry_is_put_back_other_open_errors_are_fatal() {
    for code in [libc::ELOOP, libc::EISDIR, libc::ENXIO] {
        assert!(replaced(&io::Error::from_raw_os_error(code)), "{code}");
    }
    assert!(replaced(&io::Error::other("not a regular file")));
    for code in [libc::EACCES, libc::EMFILE, libc::EIO] {
        assert!(!replaced(&io::Error::from_raw_os_error(code)), "{code}");
    }
}
