//! Tests of the trigger server: endpoints, busy/idle reports, slow and
//! silent clients.

use super::*;
use crate::postfix::master::{status_record, Availability, MasterChannel};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;

/// A private directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("oqmgr-ts-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn status_pair() -> (MasterStatus, std::os::unix::net::UnixStream) {
    let (ours, master) = std::os::unix::net::UnixStream::pair().unwrap();
    (MasterStatus::new(ours.into(), 4242, 3), master)
}

fn read_records(master: &mut std::os::unix::net::UnixStream, n: usize) -> Vec<[u8; 12]> {
    (0..n)
        .map(|_| {
            let mut rec = [0u8; 12];
            master.read_exact(&mut rec).unwrap();
            rec
        })
        .collect()
}

/// One busy/idle pair per request, nothing for spurious wake-ups.
fn assert_no_more_records(master: &mut std::os::unix::net::UnixStream) {
    master.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 12];
    match master.read(&mut buf) {
        // EOF (our side was dropped) or nothing queued: no extra record.
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        other => panic!("unexpected extra status bytes: {other:?}"),
    }
}

/// Master got exactly `n` busy/idle pairs, in that order, and nothing
/// else (it panics on two busy reports in a row).
fn assert_busy_idle_pairs(master: &mut std::os::unix::net::UnixStream, n: usize) {
    let recs = read_records(master, 2 * n);
    for pair in recs.chunks(2) {
        assert_eq!(pair[0], status_record(4242, 3, Availability::Taken));
        assert_eq!(pair[1], status_record(4242, 3, Availability::Avail));
    }
    assert_no_more_records(master);
}

/// A listening unix endpoint in a private directory.
fn unix_endpoint(tag: &str) -> (TempDir, PathBuf, std::os::unix::net::UnixListener) {
    let dir = TempDir::new(tag);
    let path = dir.0.join("qmgr");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    (dir, path, listener)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn unix_trigger_bytes_arrive_between_busy_and_idle() {
    let (_dir, path, listener) = unix_endpoint("unix");
    let (status, mut master) = status_pair();
    runtime().block_on(async {
        let mut chan =
            MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
        let mut triggers = chan.triggers().unwrap();
        assert!(chan.triggers().is_err(), "endpoints are taken once");
        for request in [&b"FADI\0"[..], b"W\0", b"I"] {
            let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
            client.write_all(request).unwrap();
            assert_eq!(triggers.next().await.unwrap(), request);
            // The server closes the connection after its one read (for
            // `I`, a moment later: it waits briefly for the NUL).
            let rest = tokio::task::spawn_blocking(move || {
                let mut rest = Vec::new();
                client.read_to_end(&mut rest).unwrap();
                rest
            });
            assert!(rest.await.unwrap().is_empty());
        }
        // More than 1 KiB: only the first KiB is one request.
        let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        client.write_all(&[b'A'; 3000]).unwrap();
        assert_eq!(triggers.next().await.unwrap().len(), TRIGGER_BUF_SIZE);
        // Nothing more: no request, and no busy/idle pair.
        let idle = tokio::time::timeout(Duration::from_millis(50), triggers.next()).await;
        assert!(idle.is_err());
    });
    assert_busy_idle_pairs(&mut master, 4);
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn a_request_without_its_nul_is_served_at_once() {
    let (_dir, path, listener) = unix_endpoint("nonul");
    let (status, _master) = status_pair();
    paused_runtime().block_on(async {
        let mut chan =
            MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
        let mut triggers = chan.triggers().unwrap();
        let start = crate::clock::io_now();
        // Writes `I` and waits, as a client that never sends the NUL.
        let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        client.write_all(b"I").unwrap();
        assert_eq!(triggers.next().await.unwrap(), b"I");
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "took {:?}",
            start.elapsed()
        );
    });
}

#[test]
fn a_client_that_writes_and_waits_holds_up_nobody() {
    let (_dir, path, listener) = unix_endpoint("waiter");
    let (status, mut master) = status_pair();
    paused_runtime().block_on(async {
        let mut chan =
            MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
        let mut triggers = chan.triggers().unwrap();
        let start = crate::clock::io_now();
        let mut waiter = std::os::unix::net::UnixStream::connect(&path).unwrap();
        waiter.write_all(b"I").unwrap();
        let mut other = std::os::unix::net::UnixStream::connect(&path).unwrap();
        other.write_all(b"D\0").unwrap();
        let mut got = vec![
            triggers.next().await.unwrap(),
            triggers.next().await.unwrap(),
        ];
        got.sort();
        assert_eq!(got, [b"D\0".to_vec(), b"I".to_vec()]);
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "took {:?}",
            start.elapsed()
        );
    });
    // Served side by side, but master still sees one busy/idle pair
    // per request, never two busy reports in a row.
    assert_busy_idle_pairs(&mut master, 2);
}

#[test]
fn silent_client_is_dropped_after_ten_seconds() {
    let (_dir, path, listener) = unix_endpoint("silent");
    let (status, _master) = status_pair();
    paused_runtime().block_on(async {
        let mut chan =
            MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
        let mut triggers = chan.triggers().unwrap();
        let start = crate::clock::io_now();
        let silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let path2 = path.clone();
        let talker = tokio::spawn(async move {
            // Connect after the silent one, so its request waits behind it.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut c = std::os::unix::net::UnixStream::connect(&path2).unwrap();
            c.write_all(b"D\0").unwrap();
            c
        });
        // Served at once, not after the silent one.
        assert_eq!(triggers.next().await.unwrap(), b"D\0");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "waited {:?}",
            start.elapsed()
        );
        drop(talker.await.unwrap());
        // The silent one is closed after CLIENT_WAIT, having sent
        // nothing, and makes no request.
        let waited = tokio::time::timeout(CLIENT_WAIT, triggers.next()).await;
        assert!(waited.is_err(), "no request for the silent client");
        let mut silent = silent;
        silent.set_nonblocking(true).unwrap();
        assert_eq!(silent.read(&mut [0u8; 1]).unwrap(), 0, "closed");
    });
}

#[test]
fn fifo_reads_coalesced_bytes() {
    let dir = TempDir::new("fifo");
    let path = dir.0.join("qmgr");
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: valid C string; master opens its FIFO read-write the same way.
    let fd = unsafe {
        assert_eq!(libc::mkfifo(cpath.as_ptr(), 0o622), 0);
        let fd = libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK);
        assert!(fd >= 0);
        OwnedFd::from_raw_fd(fd)
    };
    let (status, mut master) = status_pair();
    runtime().block_on(async {
        let mut chan = MasterChannel::from_parts(status, vec![(ServiceType::Fifo, fd)], None);
        let mut triggers = chan.triggers().unwrap();
        let mut writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        writer.write_all(b"I").unwrap();
        writer.write_all(b"D").unwrap();
        assert_eq!(triggers.next().await.unwrap(), b"ID");
        // Nothing more written: no request, and no busy/idle pair.
        let idle = tokio::time::timeout(Duration::from_millis(50), triggers.next()).await;
        assert!(idle.is_err());
        writer.write_all(b"W").unwrap();
        assert_eq!(triggers.next().await.unwrap(), b"W");
    });
    assert_busy_idle_pairs(&mut master, 2);
}

#[test]
fn request_read_before_master_left_is_delivered_then_stream_ends() {
    let (_dir, path, listener) = unix_endpoint("gone");
    // Status writes fail (EPIPE) but fd 5 is not readable: master left
    // while the request was being served.
    let (ours, _master) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.shutdown(std::net::Shutdown::Write).unwrap();
    let status = MasterStatus::new(ours.into(), 1, 1);
    runtime().block_on(async {
        let mut chan =
            MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
        let gone = chan.master_gone();
        let mut triggers = chan.triggers().unwrap();
        let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        client.write_all(b"A\0").unwrap();
        assert_eq!(triggers.next().await.unwrap(), b"A\0");
        assert!(triggers.next().await.is_none());
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .unwrap();
    });
}

#[test]
fn request_pending_after_master_left_stays_for_the_next_process() {
    let (_dir, path, listener) = unix_endpoint("reload");
    // master keeps its own copy of the listener; so does this test.
    let _masters_copy = listener.try_clone().unwrap();
    let (status, master) = status_pair();
    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    client.write_all(b"W\0").unwrap();
    // Reload: master closes the status socket, the wakeup is pending.
    drop(master);
    runtime().block_on(async {
        let mut chan =
            MasterChannel::from_parts(status, vec![(ServiceType::Unix, listener.into())], None);
        let mut triggers = chan.triggers().unwrap();
        assert!(triggers.next().await.is_none());
        // Not accepted, so not closed:
        // the client still waits, its request queued for the next process.
        client.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        let err = client.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    });
}

#[test]
fn stand_alone_request_is_one_bounded_read() {
    assert_eq!(read_stand_alone_request(&b"FADI\0"[..]).unwrap(), b"FADI\0");
    assert_eq!(
        read_stand_alone_request(&[b'x'; 5000][..]).unwrap().len(),
        TRIGGER_BUF_SIZE
    );
    assert!(read_stand_alone_request(&b""[..]).is_err());
}

#[test]
fn endpoints_need_a_runtime() {
    let (status, _master) = status_pair();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut chan = MasterChannel::from_parts(status, vec![(ServiceType::Fifo, a.into())], None);
    assert!(chan.triggers().is_err());
}
